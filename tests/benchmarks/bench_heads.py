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
(what it does now).

Then open-set accuracy, through the product's own path for each of the three: the head
written and named in the project, the index built in its space, ``identify verify``
recalibrating the thresholds there (at the dataset's share of unknown queries), and the
crops identified as a detector hands them over: the held-out pictures' known things,
which no head saw, and every unknown thing's query (another deck's cards; the objects'
held-out classes), which nobody reviewed. The accuracy is given at the dataset's mix
(``(1 - u) * known accepted right + u * unknown rejected``), with a bootstrap
interval::

    python -m tests.benchmarks.bench_heads --data .bench/data --data .bench/cards-cross
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.catalog.store import Store
from server.engine.decide.identifier import Identifier
from server.engine.live.service import Service
from server.engine.project.config import (
    DEFAULT_TAXONOMY,
    Projection,
    load_project,
    write_projection,
)
from server.engine.vision.embedders import Embedder, create_embedder, project_embedder
from server.engine.vision.embedders.projected import ProjectedEmbedder
from server.engine.vision.images import load_image
from server.engine.workflows.index import build_index
from server.engine.workflows.reviewed_crops import (
    held_out_references,
    held_out_sources,
    judge_on_reviewed,
    reviewed_crops,
)
from server.engine.workflows.train import fit_with_folds, training_vectors, with_reviewed
from server.engine.workflows.verify import MARGIN_GRID, THRESHOLD_GRID, run_verify
from tests.benchmarks.bench_accuracy import benchmark_queries
from tests.benchmarks.bench_review import Truth, overlap, review, stored_box, write_project
from tests.conftest import REPO


def run(data: Path, work: Path, seed: int = 0) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    unknown_share = float(np.mean([not q["known"] for q in benchmark_queries(data)]))
    # Verify calibrates at the dataset's mix; the reviews see no threshold (1.99 below).
    file = write_project(work, data, "separate", unknown_share, 0.0)
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
    open_set = open_set_accuracy(file, data, plain, {"synthetic": synthetic, "reviewed": with_real})
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
        "open_set": open_set,
    }


def open_set_accuracy(
    file: Path, data: Path, plain: Embedder, heads: dict[str, Any]
) -> dict[str, Any]:
    """Open-set accuracy of the plain model and of each head on the held-out known
    crops and every unknown one (see the module docstring)."""
    queries = benchmark_queries(data)
    unknown_share = float(np.mean([not q["known"] for q in queries]))
    project = load_project(file)
    store = Store(project.db_path)
    try:
        held = held_out_sources(store)
        store.set_threshold_override("taxonomy", DEFAULT_TAXONOMY, None, None)
    finally:
        store.close()
    asked = [q for q in queries if not q["known"] or f"q{q['id']}" in held]
    crops = [load_image(data / q["crop"]) for q in asked]
    text = file.read_text(encoding="utf-8")
    out: dict[str, Any] = {"unknown_share": round(unknown_share, 4)}
    rights: dict[str, np.ndarray] = {}
    for name, head in (("plain", None), *heads.items()):
        file.write_text(text, encoding="utf-8")  # the project as the reviews left it
        project = load_project(file)
        embedder: Embedder = plain
        if head is not None:
            head_file = project.data_dir / "models" / f"{head.id}.pt"
            head.save(head_file)
            embedder = ProjectedEmbedder(plain, head)
            build_index(project, embedder)
            write_projection(file, Projection(file=head_file, id=head.id))
        project = load_project(file)
        embedder = project_embedder(project.config)
        run_verify(load_project(file), embedder)
        project = load_project(file)
        ident = Identifier.open(project, embedder)
        try:
            decided = [
                ident.decide(ev)
                for i in range(0, len(crops), 16)
                for ev in ident.evidence(crops[i : i + 16])
            ]
        finally:
            ident.close()
        known = np.array([q["known"] for q in asked])
        right = np.array(
            [
                (d.label == q["label"]) if q["known"] else (d.label is None)
                for d, q in zip(decided, asked, strict=True)
            ]
        )
        top1 = np.array(
            [
                bool(d.candidates) and d.candidates[0].label == q["label"]
                for d, q in zip(decided, asked, strict=True)
            ]
        )
        rights[name] = right
        out[name] = {
            **_at_mix(known, right, unknown_share),
            "top1": round(float(top1[known].mean()), 4),
            "threshold": [decided[0].threshold, decided[0].margin_threshold],
            "best_any_threshold": _best_any(decided, known, top1, unknown_share),
        }
    out["known_queries"] = int(sum(q["known"] for q in asked))
    out["unknown_queries"] = int(sum(not q["known"] for q in asked))
    known = np.array([q["known"] for q in asked])
    out["reviewed_minus"] = {
        other: _paired(known, rights["reviewed"], rights[other], unknown_share)
        for other in ("plain", "synthetic")
    }
    return out


def _paired(known: np.ndarray, a: np.ndarray, b: np.ndarray, u: float) -> dict[str, Any]:
    """Open-set accuracy of ``a`` minus ``b`` on the same queries, with a 95 % interval
    from resampling the queries (the same draw for both; known and unknown apart)."""

    def at(idx: np.ndarray) -> float:
        k, n = known[idx], ~known[idx]
        return float(
            (1 - u) * (a[idx][k].mean() - b[idx][k].mean())
            + u * (a[idx][n].mean() - b[idx][n].mean())
        )

    rng = np.random.default_rng(0)
    k_idx, u_idx = np.flatnonzero(known), np.flatnonzero(~known)
    draws = [
        at(np.concatenate([rng.choice(k_idx, len(k_idx)), rng.choice(u_idx, len(u_idx))]))
        for _ in range(2000)
    ]
    return {
        "difference": round(at(np.arange(len(known))), 4),
        "ci": [round(float(np.percentile(draws, q)), 4) for q in (2.5, 97.5)],
    }


def _best_any(decided: list[Any], known: np.ndarray, top1: np.ndarray, u: float) -> float:
    """The best open-set accuracy any (threshold, margin) of verify's grids reaches on
    these very queries: what no calibration can beat (a bound, chosen on the test)."""
    scores = np.array([d.candidates[0].score if d.candidates else 0.0 for d in decided])
    second = np.array([d.candidates[1].score if len(d.candidates) > 1 else 0.0 for d in decided])
    best = 0.0
    for t in THRESHOLD_GRID:
        for m in MARGIN_GRID:
            accepted = (scores >= t) & (scores - second >= m)
            a = (1 - u) * (accepted & top1)[known].mean() + u * (~accepted)[~known].mean()
            best = max(best, float(a))
    return round(best, 4)


def _at_mix(known: np.ndarray, right: np.ndarray, u: float) -> dict[str, Any]:
    """Known accepted right, unknown rejected, and open-set accuracy at the mix ``u``
    with its 95 % bootstrap interval (known and unknown resampled apart; seeded)."""

    def at(k: np.ndarray, r: np.ndarray) -> tuple[float, float, float]:
        a, b = float(r[k].mean()), float(r[~k].mean())
        return a, b, (1 - u) * a + u * b

    known_right, unknown_rejected, accuracy = at(known, right)
    rng = np.random.default_rng(0)
    k_idx, u_idx = np.flatnonzero(known), np.flatnonzero(~known)
    draws = [
        at(known[idx], right[idx])[2]
        for idx in (
            np.concatenate([rng.choice(k_idx, len(k_idx)), rng.choice(u_idx, len(u_idx))])
            for _ in range(1000)
        )
    ]
    return {
        "known_accepted_right": round(known_right, 4),
        "unknown_rejected": round(unknown_rejected, 4),
        "open_set_accuracy": round(accuracy, 4),
        "ci": [round(float(np.percentile(draws, q)), 4) for q in (2.5, 97.5)],
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
