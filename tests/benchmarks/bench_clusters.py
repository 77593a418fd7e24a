"""Clusters of unknowns: time and memory at 10,000 pending unknowns, and how well the
groups match the truth on real streams.

1. Scale: 10,000 unit vectors of 512 dimensions (200 groups of 40 around random
   directions, cosine about 0.8 to their centre, plus 2,000 scattered), grouped as the
   server groups its queue (``loop.clusters.compute``): seconds, peak memory
   (tracemalloc), adjusted Rand index against the groups.
2. Real streams: every query of a benchmark dataset identified by a real ``Service``
   with thresholds no answer passes (so each is queued, as an unknown would be), then
   the queue grouped: adjusted Rand index and purity against the queries' classes
   (noise counted apart), the share of items grouped, and the number of groups.

    python -m tests.benchmarks.bench_clusters --data .bench/data --data .bench/cards-cross
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score

from server.engine.live.service import Service
from server.engine.loop.clusters import compute
from server.engine.project.config import DEFAULT_TAXONOMY, load_project
from server.engine.vision.embedders import project_embedder
from server.engine.workflows.index import build_index
from tests.benchmarks.bench_accuracy import benchmark_queries
from tests.benchmarks.bench_review import write_project
from tests.conftest import REPO

MIN_CLUSTER_SIZE = 5
"""The project default; ``--min-size`` sets the streams' (at most their items per class)."""


def purity(truth: list[str], labels: np.ndarray) -> float:
    """Share of grouped items whose group's most common class is theirs."""
    groups: dict[int, Counter[str]] = {}
    for t, g in zip(truth, labels.tolist(), strict=True):
        if g >= 0:
            groups.setdefault(g, Counter())[t] += 1
    grouped = sum(sum(c.values()) for c in groups.values())
    return sum(c.most_common(1)[0][1] for c in groups.values()) / max(1, grouped)


def apart(labels: np.ndarray) -> np.ndarray:
    """Labels with each ungrouped item (-1) a group of its own, as in the truth."""
    return np.where(labels >= 0, labels, -1 - np.arange(len(labels)))


def scale(n: int = 10_000, dim: int = 512, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    k, spread = 200, int(0.8 * n) // 200
    centres = rng.normal(size=(k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(k), spread)
    members = centres[truth] + rng.normal(size=(len(truth), dim)) * (0.75 / np.sqrt(dim))
    scattered = rng.normal(size=(n - len(truth), dim))
    x = np.vstack([members, scattered])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels_true = np.concatenate([truth, -1 - np.arange(n - len(truth))])
    tracemalloc.start()
    started = time.perf_counter()
    done = compute(list(range(n)), x, MIN_CLUSTER_SIZE)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    got = done.grouping.labels
    grouped = got[: len(truth)] >= 0
    return {
        "items": n,
        "dims": dim,
        "seconds": round(seconds, 2),
        "peak_mb": round(peak / 2**20, 1),
        "reduced_to": done.grouping.dims,
        "clusters": len(done.clusters),
        "ari": round(adjusted_rand_score(labels_true, apart(got)), 4),
        "grouped_members": round(float(grouped.mean()), 4),
        "scattered_grouped": round(float((got[len(truth) :] >= 0).mean()), 4),
        "cosine_to_centre": round(
            float(np.mean(np.sum(x[: len(truth)] * centres[truth], axis=1))), 3
        ),
    }


def stream(data: Path, work: Path, kind: str, min_size: int) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    queries = benchmark_queries(data)
    project_file = write_project(work, data, "unified", 0.5, 0.0)
    project = load_project(project_file)
    embedder = project_embedder(project.config)
    build_index(project, embedder)
    service = Service.open(load_project(project_file), embedder)
    truth: dict[int, str] = {}
    try:
        service.set_threshold("taxonomy", DEFAULT_TAXONOMY, 1.99, 0.0)
        for q in queries:
            prepared = service.prepare((data / q[kind]).read_bytes(), f"q{q['id']}")
            objects = service.identify_prepared(prepared, source=f"q{q['id']}")
            for obj in objects[:1]:
                if obj.review_id is not None:
                    truth[obj.review_id] = q["label"]
        ids, vectors = service.clusters.snapshot()
        keep = [i for i, item in enumerate(ids) if item in truth]
        ids, vectors = [ids[i] for i in keep], vectors[keep]
        started = time.perf_counter()
        done = compute(ids, vectors, min_size)
        seconds = time.perf_counter() - started
    finally:
        service.close()
    labels = done.grouping.labels
    names = [truth[i] for i in ids]
    grouped = labels >= 0
    classes = Counter(names)
    return {
        "data": data.name,
        "kind": kind,
        "min_cluster_size": min_size,
        "items": len(ids),
        "classes": len(classes),
        "items_per_class": round(len(ids) / max(1, len(classes)), 1),
        "clusters": len(done.clusters),
        "grouped": round(float(grouped.mean()), 4),
        "ari_grouped": round(
            adjusted_rand_score(
                [n for n, g in zip(names, grouped, strict=True) if g], labels[grouped]
            ),
            4,
        ),
        "ari_all_noise_apart": round(adjusted_rand_score(names, apart(labels)), 4),
        "purity": round(purity(names, labels), 4),
        "seconds": round(seconds, 2),
        "reduced_to": done.grouping.dims,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=[])
    parser.add_argument("--kind", default="frame", choices=["frame", "crop"])
    parser.add_argument("--min-size", type=int, default=MIN_CLUSTER_SIZE)
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "results" / "clusters.json")
    args = parser.parse_args()
    result: dict[str, Any] = {"scale": scale()}
    print(json.dumps(result["scale"]), flush=True)
    result["streams"] = []
    for data in args.data:
        one = stream(data, REPO / ".bench" / "clusters" / data.name, args.kind, args.min_size)
        print(json.dumps(one), flush=True)
        result["streams"].append(one)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
