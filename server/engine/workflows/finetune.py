"""``identify detector finetune``: the detector trained further on what people reviewed.

The reviewed boxes are exported (``training.export``, YOLO, the stable split by
picture), made class agnostic in the base model's task (``training.finetune``), and
Ultralytics trains from the base version's weights (the live detector by default, or
any registered one; from the architecture's ``.yaml`` when the project has no trained
detector), offline. The base and the result are both measured on the real held-out
pictures; the result is written to the models folder and registered as a new version
whose parent is the base. It does not go live: compare with ``identify evaluate``, then
``identify versions use``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.engine.catalog.store import Store, VersionRow
from server.engine.errors import IdentifyError
from server.engine.project.config import Project
from server.engine.training.dataset import TYPES, Gathered, gather
from server.engine.training.export import SPLITS, Written, write
from server.engine.training.finetune import THING, training_set
from server.engine.training.registry import (
    Identity,
    file_hash,
    record_version,
    register_live,
    stored_path,
)
from server.engine.vision.detectors.yolo import offline_ultralytics
from server.engine.vision.embedders.torch_common import pick_device
from server.engine.workflows.common import Stage, open_project, quiet, writer_lock
from server.engine.workflows.detector import ARCHITECTURE, fit_yolo


@dataclass(frozen=True)
class Finetuned:
    """What a fine-tuning made."""

    project: Project
    version: VersionRow
    base: str
    """The base version, in words."""
    pictures: dict[str, int]
    epochs: int
    image_size: int
    map50: float
    """On the real held-out pictures."""
    base_map50: float | None
    """The base's, on the same pictures (None: trained from the architecture)."""
    recall: float
    base_recall: float | None


def _base(
    store: Store, project: Project, base: int | None
) -> tuple[VersionRow | None, Path | None]:
    """The version to start from and its weights (None, None: the architecture)."""
    version = store.version(base) if base is not None else register_live(store, project, "detector")
    if version.kind != "detector":
        raise IdentifyError(f"version {version.id} is a {version.kind}, not a detector")
    path = stored_path(project, version)
    if path is None:
        if base is not None:
            raise IdentifyError(
                f"version {version.id} ({version.name}) has no weights to start from"
            )
        return None, None
    if not path.is_file() or file_hash(path) != version.content_hash:
        raise IdentifyError(f"version {version.id}'s weights {path} are gone or changed")
    return version, path


def finetune_detector(
    ref: str,
    base: int | None = None,
    epochs: int = 20,
    image_size: int | None = None,
    replay: bool = True,
    seed: int = 0,
    stage: Stage = quiet,
) -> Finetuned:
    """Fine-tune (see the module docstring).

    Raises:
        IdentifyError: no reviewed picture on either side of the split, a base that is
            not a detector with weights, or training that failed.
        ConflictError: another process holds the project (a running server).
    """
    if epochs < 1:
        raise IdentifyError("fine-tuning needs at least 1 epoch")
    project = open_project(ref)
    if not project.db_path.exists():
        raise IdentifyError(f"{project.name} has no database yet: nothing was reviewed")
    work = project.data_dir / "detector" / "finetune"
    with writer_lock(project, "identify detector finetune"):
        store = Store(project.db_path)
        try:
            base_version, weights = _base(store, project, base)
            gathered = gather(store, TYPES)
        finally:
            store.close()
        _check_sides(gathered)
        export = write(gathered, work / "export", "yolo", {"project": project.name}, overwrite=True)
        yolo = offline_ultralytics(project.data_dir)
        logging.getLogger("ultralytics").setLevel(logging.WARNING)
        model = _load(yolo, weights)
        keypoints = _keypoints(model, weights)
        scenes = project.data_dir / "detector" / "scenes"
        replayed = replay and keypoints == 4 and scenes.is_dir()
        data = training_set(work / "export", work / "data", keypoints, scenes if replayed else None)
        trained_at = (base_version.training if base_version else {}).get("image_size")
        size = image_size or int(trained_at or project.config.detector.image_size)
        device = pick_device(project.config.detector.device)
        runs = work / "runs"
        base_metrics = _measure(yolo, weights, data, size, device, runs) if weights else None
        with stage("fine-tuning", epochs) as update:
            model.add_callback("on_fit_epoch_end", lambda trainer: update(1))
            best, _ = fit_yolo(
                model, data, runs, epochs, size, device, seed, weights is not None, "fine-tuning"
            )
        metrics = _measure(yolo, best, data, size, device, runs)
        training = _training(base_version, epochs, size, seed, replayed, export, gathered)
        training["reviewed_until"] = store_newest(project)
        measured = {
            "map50_reviewed_val": round(metrics[0], 4),
            "recall_reviewed_val": round(metrics[1], 4),
            "base_map50_reviewed_val": None if base_metrics is None else round(base_metrics[0], 4),
        }
        version = _keep(project, best, base_version, training, measured)
    return Finetuned(
        project,
        version,
        base_version.name if base_version else ARCHITECTURE,
        export.pictures,
        epochs,
        size,
        metrics[0],
        None if base_metrics is None else base_metrics[0],
        metrics[1],
        None if base_metrics is None else base_metrics[1],
    )


def _training(
    base: VersionRow | None,
    epochs: int,
    size: int,
    seed: int,
    replayed: bool,
    export: Written,
    gathered: Gathered,
) -> dict[str, Any]:
    """What a fine-tuned version was trained on, as the registry keeps it."""
    return {
        "from": base.name if base else ARCHITECTURE,
        "epochs": epochs,
        "image_size": size,
        "seed": seed,
        "class_agnostic": True,
        "classes": [THING],
        "replayed_scenes": replayed,
        "pictures": export.pictures,
        "objects": export.objects,
        "backgrounds": export.backgrounds,
        "annotations": sum(len(p.annotations) for p in gathered.pictures),
    }


def _load(yolo: Any, weights: Path | None) -> Any:
    """The base model, or one clear error for a file Ultralytics cannot load."""
    try:
        return yolo.YOLO(str(weights) if weights else ARCHITECTURE)
    except Exception as exc:  # noqa: BLE001 - Ultralytics raises many kinds for a bad file
        raise IdentifyError(
            f"{weights} is not a YOLO model Ultralytics can load: {type(exc).__name__}: {exc}"
        ) from None


def store_newest(project: Project) -> str | None:
    """When the newest annotation was made."""
    store = Store(project.db_path)
    try:
        return store.newest_annotation_at()
    finally:
        store.close()


def _check_sides(gathered: Gathered) -> None:
    sides = {s: [p for p in gathered.pictures if p.split == s and p.boxes] for s in SPLITS}
    if not sides["train"] or not sides["val"]:
        raise IdentifyError(
            f"fine-tuning needs reviewed boxes on both sides of the split (train "
            f"{len(sides['train'])}, val {len(sides['val'])} picture(s)): review more first"
        )


def _keypoints(model: Any, weights: Path | None) -> int:
    """Keypoints the training labels carry: from the architecture, the corner model
    ``identify detector train`` makes (the dataset sets them); from weights, theirs.

    Raises:
        IdentifyError: a model that gives no boxes to train on.
    """
    if model.task not in ("detect", "pose"):
        raise IdentifyError(f"cannot fine-tune a {model.task} model on boxes")
    if weights is None:
        return 4
    return int(model.model.kpt_shape[0]) if model.task == "pose" else 0


def _keep(
    project: Project,
    best: Path,
    base: VersionRow | None,
    training: dict[str, Any],
    measured: dict[str, Any],
) -> VersionRow:
    """The weights in the models folder (named by content), their card beside, and a
    new version in the registry whose parent is the base."""
    digest = file_hash(best)
    target = project.data_dir / "models" / f"detector-ft-{digest[:8]}.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Whole or not at all: copied beside, then moved in (an interruption leaves no
    # truncated weights under a version's name).
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(best, partial)
    card = target.with_suffix(".json")
    card_partial = card.with_name(f".{card.name}.partial")
    card_partial.write_text(json.dumps({**training, **measured}, indent=2) + "\n")
    os.replace(partial, target)
    os.replace(card_partial, card)
    identity = Identity("detector", target.stem, target, digest)
    return record_version(project, identity, base.id if base else None, training, measured)


def _measure(
    yolo: Any, weights: Path, data: Path, size: int, device: str, runs: Path
) -> tuple[float, float]:
    """Box mAP50 and mean recall on the dataset's val side."""
    result = yolo.YOLO(str(weights)).val(
        data=str(data),
        imgsz=size,
        batch=16,
        device=device,
        workers=0,
        plots=False,
        verbose=False,
        single_cls=True,  # class agnostic, as it is trained: a COCO base's classes count as one
        project=str(runs),
        name="val",
        exist_ok=True,
    )
    return float(result.box.map50), float(result.box.mr)
