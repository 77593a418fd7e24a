"""``identify detector train``: a class-agnostic YOLO detector trained here, on synthetic
scenes of the project's own references (``vision.scenes``), since no pretrained detector
weights can be downloaded and a user's things are rarely COCO classes.

The model is a keypoint (pose) model whose four keypoints are each thing's corners: the
scenes know every corner exactly, so it learns to give a flat thing's outline where its
edges are too weak for the quad finder (a covered corner, an edge the colour of the
table), and each detection is rectified by its corners before it is identified. The
scenes are written in YOLO's folder format under the data folder, a share held out, on
the background photos and as many procedural backgrounds, so that the detector learns
the things rather than a few photos. Ultralytics trains a model built from its
``yolo11n-pose.yaml`` (no weights fetched), offline, and its box mAP50 on the held-out
scenes is recorded. The weights go to the project's models folder and the choice into the
project file's ``detector:`` block.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.catalog.store import VersionRow
from server.engine.errors import IdentifyError, NoReferencesError
from server.engine.project.config import DetectorConfig, Project, write_block
from server.engine.training.registry import Identity, file_hash, record_version
from server.engine.vision.backdrops import fallback_background
from server.engine.vision.detectors.yolo import offline_ultralytics
from server.engine.vision.embedders.torch_common import pick_device
from server.engine.vision.images import decode_image, encode_jpeg, read_image_bytes
from server.engine.vision.rectify import order_corners
from server.engine.vision.scenes import scene
from server.engine.workflows.common import Stage, open_project, quiet, writer_lock
from server.engine.workflows.index_stages import scan
from server.engine.workflows.verify import background_photos

ARCHITECTURE = "yolo11n-pose.yaml"
"""Ultralytics' smallest current keypoint model, built from its definition."""
CORNERS = "kpt_shape: [4, 3]\nflip_idx: [1, 0, 3, 2]\n"
"""The dataset's keypoints: four corners, clockwise from the top left as the picture shows
them (``rectify.order_corners``), so a mirrored scene swaps left and right."""
MIN_BACKGROUNDS = 8
"""Procedural backgrounds drawn, at least, besides the photos (as many as the photos)."""
HELD_OUT = 0.2
"""Share of the scenes kept out of training to measure the detector on."""
MAX_REFERENCES = 500
"""References drawn into scenes, at most (evenly spread over the project's)."""
SCENE_SIDE = 512
"""References are decoded at most this large: a scene draws them at a few hundred px."""
MIN_VISIBLE = 0.3
"""A thing less visible than this is not labelled (nor expected to be found)."""


@dataclass(frozen=True)
class DetectorRun:
    """What ``identify detector train`` made."""

    project: Project
    weights: Path
    scenes: int
    epochs: int
    image_size: int
    map50: float
    """Mean average precision of the boxes at IoU 0.5 on the held-out scenes."""
    corners_map50: float
    """The same for the corners (keypoint similarity at 0.5)."""


def train_detector(
    ref: str,
    scenes: int = 600,
    epochs: int = 30,
    image_size: int = 320,
    seed: int = 0,
    stage: Stage = quiet,
) -> DetectorRun:
    """Make scenes, train, measure, save the weights and point the project at them.

    Raises:
        ProjectConfigError, NoReferencesError: see ``scan``.
        IdentifyError: fewer than 10 scenes, or training failed.
        ConflictError: another process holds the project (a running server).
    """
    if scenes < 10 or epochs < 1:
        raise IdentifyError("a detector needs at least 10 scenes and 1 epoch")
    project = open_project(ref)
    files, _ = scan(project)
    rng = np.random.default_rng(seed)
    step = max(1, len(files) // MAX_REFERENCES)
    images = [
        decode_image(read_image_bytes(f.path), f.path.name, keep_alpha=True, max_side=SCENE_SIDE)
        for f in files[::step][:MAX_REFERENCES]
    ]
    if not images:
        raise NoReferencesError("no reference image to make scenes of")
    photos, _ = background_photos(project, rng)
    backgrounds = photos + [
        fallback_background(rng) for _ in range(max(MIN_BACKGROUNDS, len(photos)))
    ]
    work = project.data_dir / "detector"
    with writer_lock(project, "identify detector train"):
        with stage("making scenes", scenes) as update:
            data = _write_scenes(
                work / "scenes", images, backgrounds, rng, scenes, image_size, update
            )
        started = time.monotonic()
        with stage("training", epochs) as update:
            best, metrics = _train(project, data, work / "runs", epochs, image_size, seed, update)
        models = project.data_dir / "models"
        models.mkdir(parents=True, exist_ok=True)
        # Named by content too: a registered version's file is never overwritten.
        digest = file_hash(best)
        weights = models / f"detector-{seed}-{scenes}x{epochs}-{digest[:8]}.pt"
        shutil.copyfile(best, weights)
        run = DetectorRun(
            project,
            weights,
            scenes,
            epochs,
            image_size,
            metrics.get("metrics/mAP50(B)", 0.0),
            metrics.get("metrics/mAP50(P)", 0.0),
        )
        _write_card(run, len(images), len(photos), len(backgrounds) - len(photos), seed, started)
        relative = os.path.relpath(weights, project.file.parent)
        write_block(
            project.file,
            "detector",
            {
                **own_detector_settings(project),
                "kind": "yolo",
                "weights": relative,
                "image_size": image_size,
            },
            "identify detector train",
        )
        card = json.loads(weights.with_suffix(".json").read_text())
        _register(project, weights, digest, card)
    return run


def _register(project: Project, weights: Path, digest: str, card: dict[str, Any]) -> VersionRow:
    """Put the detector the project now has in the registry, with the switch to it."""
    held_out = card.pop("held_out_map50", {})
    metrics = {
        "map50_synthetic": held_out.get("boxes"),
        "corners_map50_synthetic": held_out.get("corners"),
    }
    identity = Identity("detector", weights.stem, weights, digest)
    return record_version(project, identity, None, card, metrics, "identify detector train")


def _write_card(
    run: DetectorRun, references: int, photos: int, procedural: int, seed: int, started: float
) -> None:
    """What the weights are and how well they did, beside them (``<weights>.json``)."""
    card = {
        "architecture": ARCHITECTURE,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_s": round(time.monotonic() - started, 1),
        "seed": seed,
        "scenes": run.scenes,
        "held_out": _held_out(run.scenes),
        "epochs": run.epochs,
        "image_size": run.image_size,
        "references": references,
        "backgrounds": {"photos": photos, "procedural": procedural},
        "held_out_map50": {"boxes": round(run.map50, 4), "corners": round(run.corners_map50, 4)},
    }
    run.weights.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def own_detector_settings(project: Project) -> dict[str, Any]:
    """The project's detector settings that differ from the defaults (kept when the
    block is rewritten), as YAML can hold them."""
    current, default = asdict(project.config.detector), asdict(DetectorConfig())
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in current.items()
        if value != default[key] and key not in ("kind", "weights", "image_size")
    }


def _write_scenes(
    root: Path,
    images: list[np.ndarray],
    backgrounds: list[np.ndarray],
    rng: np.random.Generator,
    count: int,
    image_size: int,
    update: Any,
) -> Path:
    """``count`` scenes in YOLO's layout (``images/`` and ``labels/``, ``train`` and
    ``val``), one class ``thing`` with its four corners; returns the dataset file."""
    shutil.rmtree(root, ignore_errors=True)
    size = (image_size, image_size * 3 // 4)
    held_out = _held_out(count)
    for i in range(count):
        split = "val" if i < held_out else "train"
        picks = rng.choice(len(images), min(len(images), int(rng.integers(2, 6))), replace=False)
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        made = scene([images[j] for j in picks], bg, rng, size=size)
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "images" / split / f"{i:05d}.jpg").write_bytes(encode_jpeg(made.frame, 90))
        lines = [_label_line(t.box, t.quad, size) for t in made.things if t.visible >= MIN_VISIBLE]
        (root / "labels" / split / f"{i:05d}.txt").write_text("\n".join(lines) + "\n")
        update(1)
    data = root / "data.yaml"
    data.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\n{CORNERS}names:\n  0: thing\n"
    )
    return data


def _held_out(scenes: int) -> int:
    """How many of ``scenes`` are kept out of training (the first ones)."""
    return max(2, round(scenes * HELD_OUT))


def _label_line(box: tuple[int, int, int, int], quad: np.ndarray, size: tuple[int, int]) -> str:
    """A thing as a line of a YOLO pose label file: class, its visible box's centre and
    size, then each corner (covered ones too: the model learns where they must be) with
    its visibility, all as shares; a corner outside the picture is marked absent."""
    (x0, y0, x1, y1), (w, h) = box, size
    fields = [0, (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]
    for x, y in order_corners(quad):
        inside = 0 <= x < w and 0 <= y < h
        fields += [float(x) / w, float(y) / h, 2] if inside else [0.0, 0.0, 0]
    return " ".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in fields)


def _train(
    project: Project,
    data: Path,
    runs: Path,
    epochs: int,
    image_size: int,
    seed: int,
    update: Any,
) -> tuple[Path, dict[str, float]]:
    """Train from the architecture; the best weights and their held-out metrics."""
    yolo = offline_ultralytics(project.data_dir)
    logging.getLogger("ultralytics").setLevel(logging.WARNING)  # its per-epoch tables
    model = yolo.YOLO(ARCHITECTURE)
    model.add_callback("on_fit_epoch_end", lambda trainer: update(1))
    device = pick_device(project.config.detector.device)
    return fit_yolo(
        model, data, runs, epochs, image_size, device, seed, False, "training the detector"
    )


def fit_yolo(
    model: Any,
    data: Path,
    runs: Path,
    epochs: int,
    image_size: int,
    device: str,
    seed: int,
    pretrained: bool,
    what: str,
) -> tuple[Path, dict[str, float]]:
    """Ultralytics' training of ``model`` on ``data``, offline and seeded; the best
    weights and their metrics on the dataset's val side.

    Raises:
        IdentifyError: training failed, or wrote no weights.
    """
    try:
        result = model.train(
            data=str(data),
            epochs=epochs,
            imgsz=image_size,
            batch=16,
            device=device,
            workers=0,
            seed=seed,
            deterministic=True,
            plots=False,
            # Ultralytics' check that mixed precision works on a GPU fetches a model.
            amp=False,
            pretrained=pretrained,
            project=str(runs),
            name="train",
            exist_ok=True,
            verbose=False,
        )
    except Exception as exc:  # noqa: BLE001 - Ultralytics raises many kinds; the run failed
        raise IdentifyError(f"{what} failed: {type(exc).__name__}: {exc}") from None
    best = runs / "train" / "weights" / "best.pt"
    if not best.is_file():
        raise IdentifyError(f"{what} wrote no weights under {runs}")
    metrics = getattr(result, "results_dict", {}) or {}
    return best, {key: float(value) for key, value in metrics.items()}
