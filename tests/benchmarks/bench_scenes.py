"""Several things a picture: detectors and per-object identification on synthetic scenes.

Scenes of 2-5 things from the accuracy benchmark's dataset (a quarter of them unknown,
from its held-out classes), on its benchmark-half background photos, in perspective and
partly covering each other (``vision.scenes``). Two sets: ``flags`` (flat rectangles,
what the quad finder is for) and ``mixed`` (flags and cut-out photos); on the playing-card
dataset (``cards.py``), one: ``cards`` (one deck known, another's cards unknown). For each detector
(``locate``: today's one best object; ``quad``; with ``--yolo``, a trained model):
detection recall and AP50 over the things at least half visible, corner error of the
quads as a share of the thing's diagonal, per-object open-set accuracy, and per-frame
time against the detector's time plus objects x one crop's identification.

A ground-truth thing counts right when a detection at IoU >= 0.5 has its label (known)
or is rejected (unknown); a missed thing is an error; a labelled detection that matches
no thing is a false accept and counts as an error too.

Usage (after ``bench_accuracy``, whose verified project it uses)::

    python -m tests.benchmarks.bench_scenes --data .bench/data \\
        --project .bench/accuracy/views6/bench.yaml --out .bench/scenes.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.decide.identifier import Identifier
from server.engine.decide.objects import decide, sight
from server.engine.project.config import load_project
from server.engine.vision import detectors
from server.engine.vision.backdrops import load_backgrounds
from server.engine.vision.embedders import project_embedder
from server.engine.vision.images import load_image
from server.engine.vision.locate import iou
from server.engine.vision.rectify import order_corners
from server.engine.vision.scenes import scene

YOLO_SIZE = 320
"""``--yolo`` models run at ``identify detector train``'s default side."""
MATCH_IOU = 0.5
MIN_VISIBLE = 0.5
"""Things less visible than this are neither required nor counted against a detector."""


def _things(manifest: dict[str, Any], data: Path, kinds: set[str]) -> list[tuple[str, bool, Path]]:
    known = set(manifest["classes"])
    return [
        (label, label in known, data / rel)
        for label, rel in manifest["references"].items()
        if manifest["sources"][label] in kinds
    ]


def _ap50(scored: list[tuple[float, bool]], positives: int) -> float:
    """All-point interpolated average precision of detections (score, true positive)."""
    if not positives:
        return float("nan")
    scored.sort(key=lambda st: -st[0])
    tp = np.cumsum([t for _, t in scored])
    precision = tp / np.arange(1, len(scored) + 1)
    recall = tp / positives
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * precision))


def make_scenes(
    things: list[tuple[str, bool, Path]], n: int, seed: int, data: Path
) -> list[tuple[list[tuple[str, bool, Path]], Any]]:
    """``n`` scenes of 2-5 of ``things`` each, on the dataset's benchmark-half
    backgrounds: (the things picked, the scene)."""
    rng = np.random.default_rng(seed)
    manifest = json.loads((data / "manifest.json").read_text())
    backgrounds = load_backgrounds([Path(p) for p in manifest["backgrounds"]], rng=rng)
    images = {label: load_image(path, keep_alpha=True) for label, _, path in things}
    scenes = []
    for _ in range(n):
        picks = [things[i] for i in rng.choice(len(things), int(rng.integers(2, 6)), replace=False)]
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        scenes.append((picks, scene([images[p[0]] for p in picks], bg, rng)))
    return scenes


def run_set(
    name: str,
    things: list[tuple[str, bool, Path]],
    n: int,
    seed: int,
    ident: Identifier,
    data: Path,
    yolo: Path | None = None,
    kinds: tuple[str, ...] = ("locate", "quad", "yolo"),
) -> dict[str, Any]:
    scenes = make_scenes(things, n, seed, data)
    out: dict[str, Any] = {}
    config = ident.project.config.detector
    for kind in [k for k in kinds if k != "yolo" or yolo is not None]:
        cfg = dataclasses.replace(config, kind=kind, weights=yolo if kind == "yolo" else None)
        if kind == "yolo":  # at the side it was trained at (``identify detector train``)
            cfg = dataclasses.replace(cfg, image_size=YOLO_SIZE)
        out[kind] = _measure(ident, detectors.make(cfg, ident.project.data_dir), scenes)
    return {"set": name, "scenes": n, **out}


def _measure(ident: Identifier, detector: Any, scenes: list[Any]) -> dict[str, Any]:
    required = right = extra = 0
    found = 0
    scored: list[tuple[float, bool]] = []
    corner_errors: list[float] = []
    frame_s = detect_s = crop_s = 0.0
    objects_total = 0
    for picks, sc in scenes:
        t0 = time.perf_counter()
        if detector is not None:
            detector.detect(sc.frame)
        detect_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        results = decide(ident, sight(ident, detector, sc.frame))
        frame_s += time.perf_counter() - t0
        objects_total += len(results)
        gts = [(t, picks[t.index]) for t in sc.things if t.visible >= MIN_VISIBLE]
        required += len(gts)
        used: set[int] = set()
        for res in sorted(results, key=lambda r: -r.decision.score):
            box = res.region.box or (0, 0, sc.frame.shape[1], sc.frame.shape[0])
            best, best_iou = None, MATCH_IOU
            for j, (thing, _) in enumerate(gts):
                overlap = iou(box, thing.box)
                if j not in used and overlap >= best_iou:
                    best, best_iou = j, overlap
            score = res.detection.score if res.detection is not None else res.decision.score
            scored.append((score, best is not None))
            if best is None:
                extra += res.decision.label is not None
                continue
            used.add(best)
            found += 1
            thing, (label, known, _) = gts[best]
            right += (res.decision.label == label) if known else (res.decision.label is None)
            if res.quad is not None:
                truth = order_corners(thing.quad)
                diag = float(np.linalg.norm(truth.max(axis=0) - truth.min(axis=0)))
                corner_errors.append(float(np.linalg.norm(res.quad - truth, axis=1).mean()) / diag)
        for res in results[:1]:  # one crop's identification, timed alone
            t0 = time.perf_counter()
            ident.decide(ident.evidence([res.region.image])[0])
            crop_s += time.perf_counter() - t0
    frames = len(scenes)
    per_crop = crop_s / frames
    return {
        "recall": round(found / max(1, required), 3),
        "ap50": round(_ap50(scored, required), 3),
        "open_set_accuracy": round(right / max(1, required + extra), 3),
        "false_accepts": extra,
        "things": required,
        "corner_error_median": round(float(np.median(corner_errors)), 4) if corner_errors else None,
        "frame_ms": round(1000 * frame_s / frames, 1),
        "detector_ms": round(1000 * detect_s / frames, 1),
        "crop_ms": round(1000 * per_crop, 1),
        "objects_per_frame": round(objects_total / frames, 2),
        "unmatched_per_frame": round((objects_total - found) / frames, 2),
        "latency_ratio": round(
            (frame_s / frames) / (detect_s / frames + objects_total / frames * per_crop), 2
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(".bench/data"))
    ap.add_argument("--project", type=Path, default=Path(".bench/accuracy/views6/bench.yaml"))
    ap.add_argument("--scenes", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--yolo", type=Path, help="Also measure this YOLO detector (.pt).")
    ap.add_argument(
        "--detectors", default="locate,quad,yolo", help="Which to measure (comma-separated)."
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    manifest = json.loads((args.data / "manifest.json").read_text())
    project = load_project(args.project)
    ident = Identifier.open(project, project_embedder(project.config))
    sources = set(manifest["sources"].values())
    # The card dataset (``cards.py``) is one set; the accuracy benchmark's, two.
    sets = (
        [("cards", {"cards"})]
        if sources == {"cards"}
        else [("flags", {"flags"}), ("mixed", {"flags", "tuxpaint"})]
    )
    results = [
        run_set(
            name,
            _things(manifest, args.data, kinds),
            args.scenes,
            args.seed + n,
            ident,
            args.data,
            args.yolo,
            tuple(args.detectors.split(",")),
        )
        for n, (name, kinds) in enumerate(sets)
    ]
    for r in results:
        for kind in ("locate", "quad", "yolo"):
            if kind in r:
                print(r["set"], kind, json.dumps(r[kind]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
