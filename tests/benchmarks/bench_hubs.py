"""The hub check (``server.engine.decide.hubs``) on the accuracy benchmark's queries.

Builds (or reuses) a benchmark dataset, indexes and calibrates it as ``bench_accuracy``
does, identifies every whole picture and crop, then runs the hub check over the
decisions as the server would (the whole picture's embedding, the winning reference):
which references it flags, which are hubs (their accepted matches came from at least 3
different wrong things), and how often references that only won views of their own
thing (synthetic camera views, as indexing makes them) are flagged.

Usage::

    .venv/bin/python -m tests.benchmarks.bench_hubs --data-seed 0 --work .bench/hubs0
    .venv/bin/python -m tests.benchmarks.bench_hubs --data-seed 1 --work .bench/hubs1
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.catalog.vectors import reference_views, view_backgrounds
from server.engine.decide.hubs import find_hubs
from server.engine.decide.identifier import Identifier
from server.engine.project.config import load_project
from server.engine.vision.embedders import embed_images, project_embedder
from server.engine.vision.images import load_image
from server.engine.workflows.index import build_index
from server.engine.workflows.verify import run_verify
from tests.benchmarks.bench_accuracy import write_project
from tests.benchmarks.dataset import DatasetConfig, build_dataset, find_flags_dir

HUB_WRONG_THINGS = 3
"""A reference is a hub when its accepted matches came from this many wrong things."""
POPULAR = 20
"""References given extra views of their own thing, to count false flags of popular ones."""
POPULAR_VIEWS = 8


def collect(data: Path, work: Path) -> tuple[list[dict[str, Any]], np.ndarray, Identifier]:
    """Index, calibrate and identify every query; cached in ``work``."""
    manifest = json.loads((data / "manifest.json").read_text())
    stem_of = {label: Path(rel).stem for label, rel in manifest["references"].items()}
    queries = [
        {**q, "label": stem_of[q["label"]] if q["known"] else q["label"]}
        for q in manifest["queries"]
    ]
    share = float(np.mean([not q["known"] for q in queries]))
    project_file = write_project(work, data, share, 6, True, 0, ())
    project = load_project(project_file)
    embedder = project_embedder(project.config)
    cache = work / "decisions.json"
    if not cache.exists():
        build_index(project, embedder)
        run_verify(project, embedder)
        project = load_project(project_file)
    ident = Identifier.open(project, embedder)
    if cache.exists():
        return json.loads(cache.read_text()), np.load(work / "vectors.npy"), ident
    rows, vectors = [], []
    for kind in ("frame", "crop"):
        for q in queries:
            image = load_image(data / q[kind])
            if kind == "frame":
                regions = ident.regions(image)
                decision, _ = ident.decide_regions(regions)
                vector = regions[0].evidence.vector  # what the server stores
            else:
                ev = ident.evidence([image])[0]
                decision, vector = ident.decide(ev), ev.vector
            top = decision.candidates[0] if decision.candidates and decision.matched else None
            rows.append(
                {
                    "kind": kind,
                    "thing": q["label"],
                    "accepted": decision.label,
                    "winner": top.reference_id if top else None,
                }
            )
            vectors.append(np.asarray(vector, np.float32))
    cache.write_text(json.dumps(rows))
    np.save(work / "vectors.npy", np.stack(vectors))
    return rows, np.stack(vectors), ident


def evaluate(
    rows: list[dict[str, Any]], vectors: np.ndarray, kind: str, popular: dict[int, np.ndarray]
) -> dict[str, Any]:
    idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
    winners = [rows[i]["winner"] for i in idx]
    label_of = {rows[i]["winner"]: rows[i]["accepted"] for i in idx if rows[i]["winner"]}
    wrong: dict[int, set[str]] = defaultdict(set)
    wins: dict[int, int] = defaultdict(int)
    for i in idx:
        w = rows[i]["winner"]
        if w is not None:
            wins[w] += 1
            if rows[i]["thing"] != rows[i]["accepted"]:
                wrong[w].add(rows[i]["thing"])
    hubs = {w for w, things in wrong.items() if len(things) >= HUB_WRONG_THINGS}
    flagged = [h.reference_id for h in find_hubs(winners, vectors[idx])]
    extra_w = [w for w, v in popular.items() for _ in range(len(v))]
    extra_v = [row for v in popular.values() for row in v]
    with_popular = find_hubs(extra_w + winners, np.vstack([np.array(extra_v), vectors[idx]]))
    return {
        "kind": kind,
        "hubs": {label_of[w]: f"{len(wrong[w])} wrong things in {wins[w]}" for w in hubs},
        "flagged": {label_of[w]: f"{len(wrong[w])} wrong things in {wins[w]}" for w in flagged},
        "hubs_caught": f"{len(hubs & set(flagged))} of {len(hubs)}",
        "flagged_with_only_right_matches": sum(1 for w in flagged if not wrong[w]),
        "references_with_4_or_more_matches": sum(1 for n in wins.values() if n >= 4),
        "popular_flagged": f"{sum(h.reference_id in popular for h in with_popular)} of "
        f"{len(popular)}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path(".bench/hubs"))
    args = ap.parse_args()
    data = args.work / "data"
    if not (data / "manifest.json").exists():
        build_dataset(DatasetConfig(out=data, flags_dir=find_flags_dir(), seed=args.data_seed))
    rows, vectors, ident = collect(data, args.work / "project")
    # Popular references: extra camera views of their own reference picture.
    rng = np.random.default_rng(0)
    refs = {r.id: r for r in ident.store.active_references()}
    won = sorted({r["winner"] for r in rows if r["winner"] in refs})
    backgrounds = view_backgrounds()
    popular = {}
    for ref_id in rng.permutation(won)[:POPULAR]:
        ref = refs[int(ref_id)]
        image = load_image(Path(ref.path), keep_alpha=True)
        views = reference_views(image, ref.content_hash, POPULAR_VIEWS, backgrounds)[1:]
        popular[int(ref_id)] = embed_images(ident.embedder, views)
    for kind in ("frame", "crop"):
        print(json.dumps(evaluate(rows, vectors, kind, popular), indent=1), flush=True)
    ident.close()


if __name__ == "__main__":
    main()
