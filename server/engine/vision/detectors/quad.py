"""``detector: {kind: quad}``: flat things (cards, covers, boxes) found by their outline.

The offline baseline: edges (Canny on each colour channel, at levels set from the
channel's own median, so dim and bright pictures get the same treatment), closed into
outlines, each outline
simplified to a polygon; the convex four-cornered ones of a usable size are the things.
It finds a card on a plain table well and the wrong quad on a busy background or when a
hand covers a corner: a learnt corner model is the cure for that (DESIGN.md, Flat
things).
"""

from __future__ import annotations

import cv2
import numpy as np

from server.engine.project.config import DetectorConfig
from server.engine.vision.detectors.base import Detection
from server.engine.vision.locate import Box, iou
from server.engine.vision.rectify import is_usable, order_corners, quad_box

WORK_SIDE = 640
"""Pictures are searched at this longer side (corners are scaled back)."""
APPROX_SHARE = 0.02
"""A polygon's vertices may stray this share of its perimeter from the outline."""
SAME_THING_IOU = 0.6
"""Quads whose boxes overlap more than this are one thing (the outline found twice):
the larger is kept."""
PART_SLACK = 0.1
"""A quad whose box lies within a larger kept one's but for this share is part of it."""
MAX_AREA = 0.98
"""A quad this close to the whole picture is its frame, not a thing in it."""
REFINE_MARGIN = 0.15
"""``refine``: the rough quad's box grown by this share of its size on each side is
searched for an outline."""
REFINE_SIDE = 320
"""``refine``: that region is searched at this longer side, at most."""


class QuadFinder:
    """Finds convex quadrilaterals in a picture."""

    kind = "quad"

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The quads in ``image``, larger first, each scored by how well the outline
        fills its quad (1: exactly a quadrilateral)."""
        h, w = image.shape[:2]
        scale = min(1.0, WORK_SIDE / max(h, w))
        small = cv2.resize(
            image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
        found = []
        for quad, fill in _quads(small, self.config.min_area):
            corners = quad / scale
            found.append(Detection(quad_box(corners, w, h), corners, fill))
        kept: list[Detection] = []
        for det in sorted(found, key=lambda d: -_area(d.quad)):
            if det.score >= self.config.confidence and not any(
                iou(det.box, k.box) > SAME_THING_IOU or _inside(det.box, k.box) for k in kept
            ):
                kept.append(det)
        return kept[: self.config.max_det]


def refine(image: np.ndarray, rough: np.ndarray) -> np.ndarray:
    """The outline near ``rough`` (ordered corners, e.g. a keypoint model's): the quad
    the edges show around it, when one is the same thing (overlapping it by more than
    ``SAME_THING_IOU``, as two finds of one thing do), else ``rough`` as it was. A
    learnt corner is found where edges are weak; an edge, where there is one, places it
    to within a pixel or two of the ``REFINE_SIDE`` search (under 1 % of the thing's
    diagonal), where the model's corners are off by 9-11 % (RESULTS.md)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = quad_box(rough, w, h)
    gx, gy = (x1 - x0) * REFINE_MARGIN, (y1 - y0) * REFINE_MARGIN
    x0, y0 = max(0, int(x0 - gx)), max(0, int(y0 - gy))
    x1, y1 = min(w, int(np.ceil(x1 + gx))), min(h, int(np.ceil(y1 + gy)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return rough
    shrink = min(1.0, REFINE_SIDE / max(x1 - x0, y1 - y0))
    size = (max(8, round((x1 - x0) * shrink)), max(8, round((y1 - y0) * shrink)))
    region = cv2.resize(
        np.ascontiguousarray(image[y0:y1, x0:x1]), size, interpolation=cv2.INTER_AREA
    )
    scale = np.array([size[0] / (x1 - x0), size[1] / (y1 - y0)], np.float32)  # per axis
    local = ((rough - [x0, y0]) * scale).astype(np.float32)
    best, best_overlap = rough, SAME_THING_IOU
    for quad, _ in _quads(region, min_area=0.1):
        overlap = _quad_iou(quad, local)
        if overlap > best_overlap:
            best, best_overlap = quad / scale + [x0, y0], overlap
    return best.astype(np.float32)


def _quad_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two convex quads."""
    inter, _ = cv2.intersectConvexConvex(a.astype(np.float32), b.astype(np.float32))
    union = cv2.contourArea(a.astype(np.float32)) + cv2.contourArea(b.astype(np.float32)) - inter
    return float(inter / union) if union > 0 else 0.0


def _inside(inner: Box, outer: Box) -> bool:
    """Whether box ``inner`` lies (all but ``PART_SLACK`` of it) within ``outer``: a
    quad printed on a thing (a flag's rhombus, a card's frame) is part of it."""
    w = max(0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    h = max(0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return area > 0 and w * h >= (1 - PART_SLACK) * area


def _area(quad: np.ndarray | None) -> float:
    return 0.0 if quad is None else float(cv2.contourArea(quad.astype(np.float32)))


def edges(image: np.ndarray) -> np.ndarray:
    """Canny edges of each colour channel, combined: a green card on a brown table
    differs in hue far more than in grey level."""
    channels = cv2.split(image) if image.ndim == 3 else [image]
    out = np.zeros(image.shape[:2], np.uint8)
    for channel in channels:
        blurred = cv2.GaussianBlur(channel, (5, 5), 0)
        median = float(np.median(blurred))
        low, high = int(max(0, 0.66 * median)), int(min(255, 1.33 * median)) or 1
        out = np.maximum(out, cv2.Canny(blurred, low, high))
    return out


def _quads(image: np.ndarray, min_area: float) -> list[tuple[np.ndarray, float]]:
    """(ordered corners, fill) of each usable four-cornered outline in ``image``."""
    outlines = cv2.dilate(edges(image), np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(outlines, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    total = image.shape[0] * image.shape[1]
    out = []
    for contour in contours:
        area = cv2.contourArea(contour)
        if not min_area * total <= area <= MAX_AREA * total:
            continue
        hull = cv2.convexHull(contour)
        poly = cv2.approxPolyDP(hull, APPROX_SHARE * cv2.arcLength(hull, True), True)
        if len(poly) != 4:
            continue
        quad = order_corners(poly.reshape(4, 2))
        if not is_usable(quad):
            continue
        quad_area = cv2.contourArea(quad)
        out.append((quad, float(min(1.0, area / quad_area)) if quad_area > 0 else 0.0))
    return out
