"""Detectors: where the things in a picture are, before each is identified.

One interface, ``Detector.detect(image) -> list[Detection]``, chosen per project in its
``detector:`` block (``detectors.make``): ``quad`` finds flat things (cards, covers,
boxes) by their four corners, ``yolo`` runs an Ultralytics model kept offline, ``none``
takes the whole picture as the one object. ``locate`` is not a detector here: it is the
identifier's own window search (``vision.locate``), which needs the index. Heavy
libraries are imported only by the detector that needs them.
"""

from __future__ import annotations

from pathlib import Path

from server.engine.project.config import DetectorConfig
from server.engine.vision.detectors.base import Detection, Detector, WholePicture

__all__ = ["Detection", "Detector", "WholePicture", "make"]


def make(config: DetectorConfig, data_dir: Path) -> Detector | None:
    """The project's detector; None for ``locate`` (the identifier searches windows).

    Raises:
        ModelUnavailableError: a ``yolo`` weights file that is missing, is not a YOLO
            model, or is a model of a task that gives no boxes.
    """
    if config.kind == "none":
        return WholePicture()
    if config.kind == "quad":
        from server.engine.vision.detectors.quad import QuadFinder

        return QuadFinder(config)
    if config.kind == "yolo":
        from server.engine.vision.detectors.yolo import YoloDetector

        return YoloDetector.load(config, data_dir)
    return None
