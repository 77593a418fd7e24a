"""``detector: {kind: yolo}``: an Ultralytics YOLO model from a weights file, offline.

Any detection, segmentation, pose or oriented-box model works (a user's own COCO or card
detector, or one ``identify detector train`` made); a pose model with four keypoints, or
an oriented-box model, gives each thing's corners too. Ultralytics is kept from the
network before it is first imported: no downloads, no package installs, no settings
sync, no font fetched for plots, its settings file under the project's data folder
rather than the user's home, and PIL's ``Image.open`` left as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.errors import ModelUnavailableError, ProjectConfigError
from server.engine.project.config import DetectorConfig
from server.engine.vision.detectors.base import Detection
from server.engine.vision.detectors.quad import refine
from server.engine.vision.embedders.torch_common import pick_device
from server.engine.vision.rectify import is_usable, order_corners

BOX_TASKS = ("detect", "segment", "pose", "obb")
"""Model tasks that give boxes (a classifier does not)."""
CORNERS = 4
"""Keypoints a pose model must have for them to be taken as a flat thing's corners."""
MIN_CORNER_CONFIDENCE = 0.5
"""A pose model's corner it is less sure is there than this leaves the thing without
corners (its box is identified instead)."""


def offline_ultralytics(data_dir: Path) -> Any:
    """The ``ultralytics`` module, imported with the network kept out (see the module
    docstring); its settings live in ``data_dir/ultralytics`` unless
    ``YOLO_CONFIG_DIR`` says otherwise."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(data_dir / "ultralytics"))
    from PIL import Image

    pil_open = Image.open
    import ultralytics
    from ultralytics.utils import SETTINGS, patches

    # Importing Ultralytics replaces PIL's ``Image.open`` with one that, on a file PIL
    # cannot identify, tries to install and import a HEIF plugin: every corrupt upload
    # would then fail with ModuleNotFoundError (or reach for the network) instead of
    # ``ImageRejected``. Put PIL's own back.
    if Image.open is not pil_open or pil_open.__module__ != Image.__name__:
        Image.open = getattr(patches, "_image_open", pil_open)
    if SETTINGS.get("sync"):
        SETTINGS.update({"sync": False})
    # Checking a dataset fetches a font for plots (which are off) when it is not in the
    # config dir: nothing is fetched, and plots that might want it stay off.
    from ultralytics.data import utils as data_utils

    data_utils.check_font = _no_font
    return ultralytics


def _no_font(font: str = "") -> None:
    """Ultralytics' ``check_font`` without the download: no font."""
    return


@dataclass
class YoloDetector:
    """A loaded YOLO model and the project's settings for it."""

    model: Any
    config: DetectorConfig
    class_ids: list[int] | None
    """The model's ids of ``config.classes``; None keeps every class."""
    device: str
    """``config.device``, with ``auto`` resolved (a CUDA GPU when there is one)."""
    kind = "yolo"

    @classmethod
    def load(cls, config: DetectorConfig, data_dir: Path) -> YoloDetector:
        """Load ``config.weights``.

        Raises:
            ModelUnavailableError: the file is missing, is not a YOLO model, or is a
                model of a task that gives no boxes.
            ProjectConfigError: ``config.classes`` names a class the model lacks.
        """
        path = config.weights
        if path is None or not path.is_file():
            raise ModelUnavailableError(
                f"detector.weights: no file {path}; train one with `identify detector "
                "train`, or point it at a YOLO .pt file"
            )
        if path.suffix.lower() in (".yaml", ".yml"):
            raise ModelUnavailableError(
                f"detector.weights: {path.name} is a model definition with no trained "
                "weights; train it with `identify detector train`, or give a .pt file"
            )
        yolo = offline_ultralytics(data_dir)
        try:
            model = yolo.YOLO(str(path))
            task, names = model.task, dict(model.names)
        except Exception as exc:  # noqa: BLE001 - torch and Ultralytics raise many kinds on a bad file
            raise ModelUnavailableError(
                f"detector.weights: {path.name} is not a YOLO model ({type(exc).__name__}: "
                f"{(str(exc).splitlines() or [''])[0][:200]})"
            ) from None
        if task not in BOX_TASKS:
            raise ModelUnavailableError(
                f"detector.weights: {path.name} is a {task} model; a detector needs one of "
                f"{', '.join(BOX_TASKS)}"
            )
        device = pick_device(config.device)
        detector = cls(model, config, _class_ids(config.classes, names, path.name), device)
        detector._try(path.name)
        return detector

    def _try(self, file: str) -> None:
        """Run the model once on a blank picture, so that a device that is not there
        (``cuda:3``) or a model that cannot run fails now, as one clear error.

        Raises:
            ModelUnavailableError: the model does not run on ``config.device``.
        """
        try:
            self.detect(np.zeros((64, 64, 3), np.uint8))
        except Exception as exc:  # noqa: BLE001 - torch and Ultralytics raise many kinds
            raise ModelUnavailableError(
                f"detector: {file} does not run (on device {self.device!r}) "
                f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]})"
            ) from None

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The model's detections in ``image`` (RGB), best first."""
        c = self.config
        (result,) = self.model.predict(
            np.ascontiguousarray(image[..., ::-1]),  # Ultralytics takes arrays as BGR
            imgsz=c.image_size,
            conf=c.confidence,
            iou=c.iou,
            max_det=c.max_det,
            device=self.device,
            classes=self.class_ids,
            verbose=False,
        )
        found = _detections(result, image.shape[1], image.shape[0])
        # The model's corners, placed on the thing's edges where the picture shows them.
        return [d if d.quad is None else replace(d, quad=refine(image, d.quad)) for d in found]


def _class_ids(wanted: tuple[str, ...], names: dict[int, str], file: str) -> list[int] | None:
    if not wanted:
        return None
    ids = {name: i for i, name in names.items()}
    missing = [w for w in wanted if w not in ids]
    if missing:
        shown = ", ".join(list(ids)[:20])
        raise ProjectConfigError(
            f"detector.classes: {file} has no class {missing[0]!r} (it has: {shown})"
        )
    return [ids[w] for w in wanted]


def _corners(result: Any) -> np.ndarray | None:
    """Each thing's corners (n, 4, 2) as the model gives them, NaN where it is unsure of
    one; None when the model gives no corners."""
    obb = getattr(result, "obb", None)
    if obb is not None:
        corners: np.ndarray = obb.xyxyxyxy.cpu().numpy().astype(np.float32)
        return corners
    kpts = getattr(result, "keypoints", None)
    if kpts is None or kpts.xy is None or kpts.xy.shape[1] != CORNERS:
        return None
    corners = kpts.xy.cpu().numpy().astype(np.float32)
    if kpts.conf is not None:
        corners[kpts.conf.cpu().numpy() < MIN_CORNER_CONFIDENCE] = np.nan
    return corners


def _quad(corners: np.ndarray) -> np.ndarray | None:
    """A model's four corners, in its order (around the thing, either way), as a quad
    clockwise from the top left; None when one is missing or they cross or fold."""
    if not np.isfinite(corners).all() or not is_usable(corners):
        return None
    return order_corners(corners)  # a convex quad keeps its shape, started at the top left


def _detections(result: Any, width: int, height: int) -> list[Detection]:
    boxes = result.boxes if result.boxes is not None else getattr(result, "obb", None)
    if boxes is None or not len(boxes):
        return []
    xyxy = boxes.xyxy.cpu().numpy()
    scores = boxes.conf.cpu().numpy()
    classes = boxes.cls.cpu().numpy().astype(int)
    corners = _corners(result)
    out = []
    for i in np.argsort(-scores, kind="stable"):
        x0, y0, x1, y1 = xyxy[i]
        box = (
            max(0, int(np.floor(x0))),
            max(0, int(np.floor(y0))),
            min(width, int(np.ceil(x1))),
            min(height, int(np.ceil(y1))),
        )
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            continue
        quad = _quad(corners[i]) if corners is not None else None
        out.append(Detection(box, quad, float(scores[i]), result.names.get(int(classes[i]))))
    return out
