"""Second-stage variants side by side on one dataset, each on the same queries' evidence.

    python -m tests.benchmarks.bench_rerank --data .bench/cards --work .bench/rerank \\
        --variant "" --variant aligned_shortlist=5 --variant aligned=1.0 [--sample 300]

What a change to the second stage (``rerank.*`` in the project file) does, in minutes
rather than the half hour of ``bench_accuracy``: the dataset's references are indexed
once (views 6), each query's evidence (embedding, keypoints, layouts, pixels) is
computed once, and every variant re-ranks it. No ``verify`` is run, so there is no
operating point; reported per variant and query kind (crops; frames, located as
identify locates them):

- known top-1: share of known-class queries whose best class is right;
- AUROC: known queries against unknown ones, ranked by the best score;
- best open-set accuracy: at the best single threshold on the score (an upper bound of
  what ``verify``'s operating point gets; it moves as that does);
- the median time of the re-ranking and decision alone.

A variant is a comma-separated list of ``KEY=VALUE`` rerank settings; an empty one is
the defaults. ``bench_accuracy`` (with ``--rerank``) confirms a chosen variant.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from server.engine.decide.identifier import Identifier, Region
from server.engine.project.config import RerankConfig, load_project
from server.engine.vision.embedders import project_embedder
from server.engine.vision.images import load_image
from server.engine.workflows.index import build_index
from tests.benchmarks.bench_accuracy import auroc, benchmark_queries, write_project

VIEWS = 6


def rerank_config(base: RerankConfig, variant: str) -> RerankConfig:
    """``base`` with the variant's ``KEY=VALUE`` settings (values read as YAML)."""
    settings: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in variant.split(","))):
        key, _, value = pair.partition("=")
        settings[key.strip()] = yaml.safe_load(value)
    return replace(base, **settings)


def summary(right: np.ndarray, known: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Known top-1, AUROC of the best score, best open-set accuracy over thresholds."""
    best = max(
        float(((known & right & (scores >= t)) | (~known & (scores < t))).mean())
        for t in np.unique(np.append(scores, np.inf))
    )
    return {
        "known_top1": round(float(right[known].mean()), 3),
        "auroc": round(auroc(scores[known], scores[~known]), 3),
        "best_open_set_accuracy": round(best, 3),
    }


def run(
    data: Path, work: Path, variants: Sequence[str], kinds: Sequence[str], sample: int, seed: int
) -> list[dict[str, Any]]:
    queries = benchmark_queries(data)
    if 0 < sample < len(queries):
        picked = np.random.default_rng(seed).choice(len(queries), sample, replace=False)
        queries = [queries[i] for i in sorted(picked)]
    unknown = float(np.mean([not q["known"] for q in queries]))
    project = load_project(write_project(work, data, unknown, VIEWS, True))
    embedder = project_embedder(project.config)
    build_index(project, embedder)
    ident = Identifier.open(project, embedder)
    configs = [
        replace(
            project, config=replace(project.config, rerank=rerank_config(project.config.rerank, v))
        )
        for v in variants
    ]
    known = np.array([q["known"] for q in queries])
    out = []
    try:
        for kind in kinds:
            labels: list[list[str | None]] = [[] for _ in variants]
            scores: list[list[float]] = [[] for _ in variants]
            seconds: list[list[float]] = [[] for _ in variants]
            for q in queries:
                image = load_image(data / q[kind])
                regions = (
                    ident.regions(image)
                    if kind == "frame"
                    else [Region(None, image, ident.evidence([image])[0])]
                )
                for i, config in enumerate(configs):
                    ident.project = config
                    t0 = time.perf_counter()
                    decision = (
                        ident.decide_regions(regions)[0]
                        if kind == "frame"
                        else ident.decide(regions[0].evidence)
                    )
                    seconds[i].append(time.perf_counter() - t0)
                    top = decision.candidates[0] if decision.candidates else None
                    labels[i].append(top.label if top else None)
                    scores[i].append(top.score if top else 0.0)
            for i, variant in enumerate(variants):
                right = np.array(
                    [lab == q["label"] for lab, q in zip(labels[i], queries, strict=True)]
                )
                row = {"kind": kind, "variant": variant or "(defaults)", "queries": len(queries)}
                row |= summary(right, known, np.array(scores[i]))
                row["median_ms"] = round(1000 * float(np.median(seconds[i])), 1)
                out.append(row)
                print(json.dumps(row), flush=True)
    finally:
        ident.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--variant", action="append", default=None, help="KEY=VALUE,... (repeatable)")
    ap.add_argument("--kinds", default="crop,frame", help="crop, frame or both")
    ap.add_argument("--sample", type=int, default=0, help="queries drawn (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = run(
        args.data, args.work, args.variant or [""], args.kinds.split(","), args.sample, args.seed
    )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
