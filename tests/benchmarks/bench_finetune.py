"""Fine-tuning the detector on a stream's corrections: does ``identify detector
finetune`` raise recall on pictures it never saw, over the detector trained on
synthetic scenes only?

Per dataset: a project of its known references (``separate`` taxonomy, so labels make
no references and only the detector changes), whose detector is trained by ``identify
detector train`` on synthetic scenes of those references over the packaged and
procedural backgrounds. Then a stream of multi-object scenes on the benchmark's other
background photos (``bench_scenes``: 2-5 things, a quarter unknown, in perspective and
covering each other) goes through the live service with thresholds no answer passes,
so every object found is queued, and a simulated reviewer decides each from the truth:
a found box on a thing (IoU >= 0.5) is confirmed or corrected to the thing's name, a box
on nothing is a false positive, and every thing at least half visible that no box found
is annotated ``missed`` with its own box. ``identify detector finetune`` trains from the
live detector on those annotations (exported, split by picture); the base and the
result are compared by ``identify evaluate`` on the held-out reviewed pictures, and on
fresh scenes nobody reviewed (``bench_scenes``' measure)::

    python -m tests.benchmarks.bench_finetune --data .bench/data --data .bench/cards-cross
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2

from server.engine.catalog.store import Store
from server.engine.decide.identifier import Identifier
from server.engine.live.service import Service
from server.engine.project.config import DEFAULT_TAXONOMY, Project, load_project
from server.engine.training.registry import stored_path
from server.engine.vision import detectors
from server.engine.vision.embedders import create_embedder, project_embedder
from server.engine.vision.locate import iou
from server.engine.workflows.detector import train_detector
from server.engine.workflows.evaluate import evaluate_versions
from server.engine.workflows.finetune import finetune_detector
from server.engine.workflows.index import build_index
from tests.benchmarks.bench_review import stored_box, write_project
from tests.benchmarks.bench_scenes import MATCH_IOU, MIN_VISIBLE, _measure, _things, make_scenes
from tests.conftest import REPO

Scenes = list[tuple[list[tuple[str, bool, Path]], Any]]


def _kinds(manifest: dict[str, Any]) -> set[str]:
    return set(manifest["sources"].values())


def review_stream(service: Service, scenes: Scenes) -> Counter[str]:
    """Every scene identified and each of its things reviewed (the module docstring);
    the annotations made, by type."""
    made: Counter[str] = Counter()
    for n, (picks, sc) in enumerate(scenes):
        ok, png = cv2.imencode(".png", cv2.cvtColor(sc.frame, cv2.COLOR_RGB2BGR))
        assert ok
        source = f"s{n}"
        objects = service.identify_prepared(service.prepare(png.tobytes(), source), source=source)
        things = [t for t in sc.things if t.visible >= MIN_VISIBLE]
        used: set[int] = set()
        for obj in sorted(objects, key=lambda o: -o.decision.score):
            if obj.review_id is None:
                continue
            box = obj.bbox or (0, 0, *obj.picture)
            best, best_iou = None, MATCH_IOU
            for j, thing in enumerate(things):
                overlap = iou(box, thing.box)
                if j not in used and overlap >= best_iou:
                    best, best_iou = j, overlap
            if best is None:
                kind, label = "false_positive", None
            else:
                used.add(best)
                label, known, _ = picks[things[best].index]
                # Right: its class named, or unknown for a thing the index does not hold.
                right = obj.decision.label == (label if known else None)
                kind = "confirmed" if right else "corrected"
            plan = service.plan_annotation(obj.review_id, kind, label)
            service.commit_annotation(plan, service.prepare_annotation(plan))
            made[kind] += 1
        anchor = next((o for o in objects if o.review_id is not None), None)
        for j, thing in enumerate(things):
            if j in used or anchor is None:
                continue
            box = stored_box([int(v) for v in thing.box], anchor.picture)
            label = picks[thing.index][0]
            plan = service.plan_annotation(anchor.review_id, "missed", label, box)
            service.commit_annotation(plan, service.prepare_annotation(plan))
            made["missed"] += 1
    return made


def _detector(project: Project, weights: Path | None) -> Any:
    """The live detector, or the same settings with other weights (class agnostic)."""
    cfg = project.config.detector
    if weights is not None:
        cfg = dataclasses.replace(cfg, weights=weights, classes=())
    return detectors.make(cfg, project.data_dir)


def run(data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    manifest = json.loads((data / "manifest.json").read_text())
    things = _things(manifest, data, _kinds(manifest))
    file = write_project(work, data, "separate", 0.0, 0.0)
    project = load_project(file)
    plain = create_embedder(project.config.model)
    build_index(project, plain)
    t0 = time.perf_counter()
    base_run = train_detector(str(file), args.base_scenes, args.base_epochs, seed=args.seed)
    base_s = time.perf_counter() - t0
    project = load_project(file)
    stream = make_scenes(things, args.stream, args.seed + 100, data)
    service = Service.open(project, project_embedder(project.config))
    try:
        service.set_threshold("taxonomy", DEFAULT_TAXONOMY, 1.99, 0.0)
        made = review_stream(service, stream)
    finally:
        service.close()
    t0 = time.perf_counter()
    tuned = finetune_detector(str(file), epochs=args.epochs, seed=args.seed)
    tune_s = time.perf_counter() - t0
    compared = evaluate_versions(str(file), "live", str(tuned.version.id)).to_json()
    fresh = make_scenes(things, args.test, args.seed + 200, data)
    ident = Identifier.open(project, project_embedder(project.config))
    try:
        on_fresh = {
            "base": _measure(ident, _detector(project, None), fresh),
            "finetuned": _measure(
                ident, _detector(project, stored_path(project, tuned.version)), fresh
            ),
        }
    finally:
        ident.close()
    store = Store(project.db_path)
    try:
        versions = len(store.versions())
    finally:
        store.close()
    return {
        "data": data.name,
        "base": {
            "weights": base_run.weights.name,
            "scenes": args.base_scenes,
            "epochs": args.base_epochs,
            "seconds": round(base_s, 1),
            "map50_synthetic": round(base_run.map50, 4),
        },
        "stream_scenes": args.stream,
        "annotations": dict(made),
        "export": {"pictures": tuned.pictures, "objects": tuned.version.training.get("objects")},
        "finetune": {
            "epochs": args.epochs,
            "seconds": round(tune_s, 1),
            "val_recall": round(tuned.recall, 4),
            "val_recall_base": None if tuned.base_recall is None else round(tuned.base_recall, 4),
            "val_map50": round(tuned.map50, 4),
            "val_map50_base": None if tuned.base_map50 is None else round(tuned.base_map50, 4),
        },
        "evaluate": compared,
        "fresh_scenes": args.test,
        "fresh": on_fresh,
        "versions": versions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=[])
    parser.add_argument("--base-scenes", type=int, default=300)
    parser.add_argument("--base-epochs", type=int, default=20)
    parser.add_argument("--stream", type=int, default=200, help="Scenes reviewed.")
    parser.add_argument("--test", type=int, default=60, help="Fresh scenes measured.")
    parser.add_argument("--epochs", type=int, default=10, help="Fine-tuning epochs.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "results" / "finetune.json")
    args = parser.parse_args()
    results = []
    for data in args.data:
        one = run(data, REPO / ".bench" / "finetune" / data.name, args)
        print(json.dumps(one), flush=True)
        results.append(one)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
