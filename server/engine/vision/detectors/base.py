"""What every detector gives and takes: ``Detection`` and the ``Detector`` interface, and
the whole-picture fallback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from server.engine.vision.locate import Box


@dataclass(frozen=True)
class Detection:
    """One thing found in a picture."""

    box: Box
    """Its axis-aligned box in the picture."""
    quad: np.ndarray | None
    """Its four corners (4, 2), clockwise from the top left, when the detector finds
    corners (``quad``, a pose model); None otherwise."""
    score: float
    """The detector's confidence, 0-1."""
    name: str | None = None
    """The detector's class name; None for a class-agnostic detector."""


class Detector(Protocol):
    """Finds things in an RGB picture (uint8, height x width x 3)."""

    kind: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The things in ``image``, best first, at most the detector's ``max_det``."""
        ...


class WholePicture:
    """``detector: {kind: none}``: the whole picture is the one object."""

    kind = "none"

    def detect(self, image: np.ndarray) -> list[Detection]:
        """One detection covering ``image``."""
        h, w = image.shape[:2]
        return [Detection((0, 0, w, h), None, 1.0)]
