"""Detectors: where the things in a picture are, before each is identified.

One interface, ``Detector.detect(image) -> list[Detection]``, chosen per project in its
``detector:`` block (``detectors.make``): ``quad`` finds flat things (cards, covers,
boxes) by their four corners, ``yolo`` runs an Ultralytics model kept offline, ``none``
takes the whole picture as the one object. ``locate`` is not a detector here: it is the
identifier's own window search (``vision.locate``), which needs the index. Heavy
libraries are imported only by the detector that needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from server.engine.project.config import DetectorConfig, DetectorKind
from server.engine.vision.detectors.base import Detection, Detector, WholePicture

__all__ = ["Detection", "Detector", "WholePicture", "make", "suggest"]

FLAT_SHARE = 0.8
"""``suggest`` picks the quad finder when at least this share of references is flat."""
CLEAR_SHARE = 0.01
"""A reference is a flat rectangle when at most this share of its pixels is see-through
(alpha under half: an antialiased edge does not count)."""


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


def suggest(references: Sequence[np.ndarray]) -> tuple[DetectorKind, str]:
    """The detector for a project with these reference images (RGB or RGBA), and why.

    A reference with no transparent pixels is a picture of a whole flat rectangle (a
    card, a cover, a flag, a box face: its edges are the image's), which the quad finder
    finds and straightens; a cut-out (transparent around the thing) has a shape of its
    own, which the window search locates. When the quad finder finds nothing in a
    picture, the picture is located anyway.
    """
    if not references:
        return "locate", "no reference images to judge by"
    flat = sum(
        1
        for im in references
        if im.ndim < 3 or im.shape[2] < 4 or (im[..., 3] < 128).mean() <= CLEAR_SHARE
    )
    share = flat / len(references)
    if share >= FLAT_SHARE:
        return "quad", f"{flat} of {len(references)} references are flat rectangles (opaque)"
    return "locate", f"{len(references) - flat} of {len(references)} references are cut-outs"
