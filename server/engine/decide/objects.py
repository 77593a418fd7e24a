"""The objects in a whole picture: found by the project's detector, each cut out
(straightened when its corners are known, see ``vision.rectify``) and identified as a
crop; without a detector, or when it finds nothing, the one object the window search
locates (``Identifier.regions``).

Two halves, so that the server can run the heavy one on workers: ``sight`` (detect,
cut out, embed: read-only, worker-safe) and ``decide`` (search and decide: on the
thread that owns the index).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from server.engine.decide.decision import Decision
from server.engine.decide.identifier import Identifier, Region
from server.engine.vision.detectors import Detection, Detector
from server.engine.vision.rectify import rectify

MIN_CROP_SIDE = 8
"""A detection whose box is thinner than this many pixels is dropped."""


@dataclass(frozen=True)
class Sighting:
    """A picture ready for decisions: either the things a detector found (``spotted``,
    each with its region) or the regions the window search considers (``regions``, the
    whole picture first)."""

    image: np.ndarray
    spotted: Sequence[tuple[Detection, Region]] = ()
    regions: Sequence[Region] = ()
    fell_back: bool = False
    """A detector ran and found nothing, so the picture was located instead."""


@dataclass(frozen=True)
class Found:
    """One object of a picture and the decision about it."""

    decision: Decision
    region: Region
    """Its box in the picture (None: the whole picture), its crop and evidence."""
    detection: Detection | None = None
    """What the detector said of it; None when it was located (or the fallback)."""

    @property
    def quad(self) -> np.ndarray | None:
        """Its four corners in the picture, when the detector found them."""
        return None if self.detection is None else self.detection.quad


def sight(ident: Identifier, detector: Detector | None, image: np.ndarray) -> Sighting:
    """Detect the things in ``image`` and compute each one's evidence; without a
    detector, or when it finds nothing, the window search's regions. Worker-safe."""
    if detector is None:
        return Sighting(image, regions=ident.regions(image))
    detections = [
        d
        for d in detector.detect(image)
        if min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= MIN_CROP_SIDE
    ]
    if not detections:
        return Sighting(image, regions=ident.regions(image), fell_back=True)
    crops = [_crop(image, d) for d in detections]
    evidence = [
        # A straightened crop is the flat thing, corner to corner.
        replace(ev, outline=_frame(crop)) if d.quad is not None else ev
        for d, crop, ev in zip(detections, crops, ident.evidence(crops), strict=True)
    ]
    return Sighting(
        image,
        spotted=[
            (d, Region(d.box, crop, ev))
            for d, crop, ev in zip(detections, crops, evidence, strict=True)
        ],
    )


def decide(ident: Identifier, sighting: Sighting) -> list[Found]:
    """The decision about each object of ``sighting``, best detection first. A detected
    thing is decided as a crop; a located one as a whole picture (``decide_regions``)."""
    if sighting.spotted:
        return [Found(ident.decide(region.evidence), region, d) for d, region in sighting.spotted]
    decision, region = ident.decide_regions(sighting.regions)
    return [Found(decision, region)]


def _frame(image: np.ndarray) -> np.ndarray:
    """The corners of a picture, clockwise from the top left."""
    h, w = image.shape[:2]
    return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)


def _crop(image: np.ndarray, detection: Detection) -> np.ndarray:
    """The detection's pixels: straightened when its corners are known, else its box."""
    if detection.quad is not None:
        return rectify(image, detection.quad)
    x0, y0, x1, y1 = detection.box
    return np.ascontiguousarray(image[y0:y1, x0:x1])
