"""The 2-D map of a grouping: each item at its first two principal components, coloured
by its cluster (grey: in none), each cluster's id at its members' centre. A PNG for a
browser; the terminal UI draws the same points itself."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from server.engine.catalog.store import MapPoint

SIZE = (640, 480)
MARGIN = 24
PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (127, 127, 127),
]
"""Colours (RGB) the clusters take in turn."""
NOISE = (200, 200, 200)


def colour(cluster_id: int) -> tuple[int, int, int]:
    """A cluster's colour (RGB)."""
    return PALETTE[cluster_id % len(PALETTE)]


def scaled(points: Sequence[MapPoint], width: int, height: int, margin: int) -> np.ndarray:
    """The points' positions in a ``width`` x ``height`` frame (aspect kept)."""
    if not points:
        return np.zeros((0, 2))
    xy = np.array([[p.x, p.y] for p in points], np.float64)
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = max(float((high - low).max()), 1e-9)
    scale = min(width - 2 * margin, height - 2 * margin) / span
    centre = (low + high) / 2
    return (xy - centre) * scale * np.array([1, -1]) + np.array([width / 2, height / 2])


def draw_map(points: Sequence[MapPoint]) -> bytes:
    """The map as PNG bytes."""
    width, height = SIZE
    canvas = np.full((height, width, 3), 255, np.uint8)
    where = scaled(points, width, height, MARGIN)
    for p, (x, y) in zip(points, where, strict=True):
        rgb = NOISE if p.cluster_id is None else colour(p.cluster_id)
        cv2.circle(canvas, (round(x), round(y)), 3, rgb[::-1], -1, cv2.LINE_AA)
    ids = np.array([-1 if p.cluster_id is None else p.cluster_id for p in points])
    for cluster_id in np.unique(ids[ids >= 0]).tolist():
        cx, cy = where[ids == cluster_id].mean(axis=0)
        origin = (round(cx) + 6, round(cy) - 6)
        cv2.putText(
            canvas,
            str(cluster_id),
            origin,
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    if not points:
        cv2.putText(
            canvas,
            "nothing grouped yet",
            (MARGIN, height // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.7,
            (90, 90, 90),
            1,
            cv2.LINE_AA,
        )
    ok, png = cv2.imencode(".png", canvas)
    assert ok
    return png.tobytes()
