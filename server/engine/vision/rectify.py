"""Flat things seen flat: a quadrilateral's corners put in order, checked, and the
picture inside it warped to a rectangle (a perspective rectification).

A card, a cover or a box face photographed at an angle is a quadrilateral in the
picture; warping it back to a rectangle of its own proportions undoes the perspective,
so the embedder and any pixel comparison see it as the reference was photographed.
"""

from __future__ import annotations

import cv2
import numpy as np

from server.engine.vision.locate import Box

MIN_SIDE_PX = 8.0
"""A quad with a side shorter than this is too small to rectify."""
MAX_RECTIFIED_SIDE = 512
"""The rectified crop's longer side, at most (a crop is embedded at a few hundred px)."""


def order_corners(points: np.ndarray) -> np.ndarray:
    """Four points as (4, 2) float32, clockwise from the top left (in image
    coordinates, y down): top-left, top-right, bottom-right, bottom-left."""
    pts = np.asarray(points, np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # clockwise on screen, from the left-most angle
    start = int(np.argmin(pts.sum(axis=1)))  # the top-left has the smallest x + y
    return np.roll(pts, -start, axis=0)


def is_usable(quad: np.ndarray) -> bool:
    """Whether ``quad`` (ordered) is a convex, non-degenerate quadrilateral: no side
    shorter than ``MIN_SIDE_PX``, no self-intersection, no three corners in a line."""
    if quad.shape != (4, 2) or not np.isfinite(quad).all():
        return False
    sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    if sides.min() < MIN_SIDE_PX:
        return False
    edges = np.roll(quad, -1, axis=0) - quad
    turns = (
        edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1]
        - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    )
    # Convex and simple: every turn has the same sign and none is (nearly) straight.
    return bool(np.all(turns > 1e-3 * sides.max() ** 2) or np.all(turns < -1e-3 * sides.max() ** 2))


def quad_box(quad: np.ndarray, width: int, height: int) -> Box:
    """The axis-aligned box around ``quad``, clipped to the picture."""
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    return (max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1)))


def rectified_size(quad: np.ndarray, aspect: float | None = None) -> tuple[int, int]:
    """(width, height) of the rectangle ``quad`` becomes: its mean side lengths, or
    ``aspect`` (width / height, e.g. the matched reference's) at its mean area; the
    longer side at most ``MAX_RECTIFIED_SIDE``."""
    sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    w, h = (sides[0] + sides[2]) / 2, (sides[1] + sides[3]) / 2
    if aspect is not None and aspect > 0:
        area = w * h
        w, h = np.sqrt(area * aspect), np.sqrt(area / aspect)
    scale = min(1.0, MAX_RECTIFIED_SIDE / max(w, h))
    return max(2, round(w * scale)), max(2, round(h * scale))


def rectify(image: np.ndarray, quad: np.ndarray, aspect: float | None = None) -> np.ndarray:
    """The picture inside ``quad`` (ordered) warped to an upright rectangle (see
    ``rectified_size``)."""
    w, h = rectified_size(quad, aspect)
    target = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
    warp = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    return cv2.warpPerspective(
        image, warp, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )
