"""Heads from real corrections: does a projection head trained on reviewed crops beat
one trained on synthetic views only, on real pictures neither saw?

Per dataset: one reference per known class, indexed, in a ``separate`` taxonomy (labels
make no references, so the index stays one reference a class and only the head
changes). Every query of a known class (a camera-like photo) is identified with
thresholds no answer passes, so all are queued, and a simulated reviewer labels each
from the truth (``bench_review.review``: the thing's own box where the found one misses
it). Then, as ``identify train`` does, the reviewed crops are split by picture and time
(the newest quarter held out), and three things identify the held-out crops by nearest
class mean: the plain model, a head fitted on synthetic views only (what ``train`` did
before), and a head fitted on the synthetic views plus the reviewed crops not held out
(what it does now)::

    python -m tests.benchmarks.bench_heads --data .bench/data --data .bench/cards-cross
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path
from typing import Any

from server.engine.catalog.store import Store
from server.engine.live.service import Service
from server.engine.project.config import DEFAULT_TAXONOMY, load_project
from server.engine.vision.embedders import create_embedder
from server.engine.workflows.index import build_index
from server.engine.workflows.reviewed_crops import (
    held_out_references,
    judge_on_reviewed,
    reviewed_crops,
)
from server.engine.workflows.train import fit_with_folds, training_vectors, with_reviewed
from tests.benchmarks.bench_accuracy import benchmark_queries
from tests.benchmarks.bench_review import Truth, overlap, review, stored_box, write_project
from tests.conftest import REPO


def run(data: Path, work: Path, seed: int = 0) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    file = write_project(work, data, "separate", 0.0, 0.0)
    project = load_project(file)
    plain = create_embedder(project.config.model)
    build_index(project, plain)
    queries = [q for q in benchmark_queries(data) if q["known"]]
    random.Random(seed).shuffle(queries)
    truth = Truth()
    service = Service.open(project, plain)
    try:
        service.set_threshold("taxonomy", DEFAULT_TAXONOMY, 1.99, 0.0)
        for q in queries:
            source = f"q{q['id']}"
            objects = service.identify_prepared(
                service.prepare((data / q["frame"]).read_bytes(), source), source=source
            )
            truth.label[source], truth.indexed[source] = q["label"], True
            for obj in objects[:1]:
                if obj.review_id is not None and overlap(obj, q, "frame") < 0.5:
                    truth.boxes[obj.review_id] = stored_box(q["bbox"], obj.picture)
        reviewed = review(service, truth)
    finally:
        service.close()
    store = Store(project.db_path)
    try:
        data_set = training_vectors(project, plain, store, None, held_out_references(store))
        real = reviewed_crops(store, plain, data_set.classes)
    finally:
        store.close()
    fit = ~data_set.holdout
    synthetic = fit_with_folds(data_set, project, plain.spec.model_id)
    both = with_reviewed(data_set, real)
    with_real = fit_with_folds(both, project, plain.spec.model_id)
    only = judge_on_reviewed(real, data_set.vectors[fit], data_set.labels[fit], synthetic)
    combined = judge_on_reviewed(
        real, both.vectors[~both.holdout], both.labels[~both.holdout], with_real
    )
    return {
        "data": data.name,
        "classes": len(data_set.classes),
        "queries": len(queries),
        "reviewed": reviewed,
        "crops_trained_on": combined["trained_on"],
        "crops_held_out": combined["held_out"],
        "held_out_top1_plain": only.get("top1_plain"),
        "held_out_top1_synthetic_head": only.get("top1"),
        "held_out_top1_reviewed_head": combined.get("top1"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "results" / "heads.json")
    args = parser.parse_args()
    results = []
    for data in args.data:
        one = run(data, REPO / ".bench" / "heads" / data.name)
        print(json.dumps(one), flush=True)
        results.append(one)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
