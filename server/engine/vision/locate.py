"""Finding the object in a whole picture when no detector gave a box.

In a camera frame the object is a third to four fifths of the picture and the rest is
background, so one vector for the whole frame is mostly a vector of the background
(on the benchmark, whole frames are identified far worse than crops of the same scenes;
RESULTS.md). A CNN's last feature map still says *where* the evidence is: GeM-pooling it over
a grid of windows gives, from one forward pass, one vector per window in the same space
as the references' (regional search, as in R-MAC, Tolias et al. 2016). The windows are
searched in the index; the few that score best are cut from the picture and identified
as crops, with the full second stage, next to the whole picture; the best of these is
the answer and its window the object's box.

Embedders without a spatial feature map (CLIP's ViT) embed a coarse grid of crops
instead: slower, same result shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from server.engine.vision.embedders import Embedder, embed_images
from server.engine.vision.embedders.base import Window

Box = tuple[int, int, int, int]
"""x0, y0, x1, y1 in pixels (x1, y1 exclusive)."""

SCALES = (0.35, 0.5, 0.65, 0.8)
"""Window sides as fractions of the picture's shorter side (plus the whole picture)."""
STEP = 1 / 3
"""Windows overlap: each step moves a third of the window's side."""
COARSE_SCALES = (0.6,)
COARSE_STEP = 1 / 2
"""Windows for embedders that must embed each window as a crop: one scale, half-window
steps (12 crops of a 4:3 picture, embedded as one batch)."""
GROW = 0.1
"""A chosen window is grown by this share of its side on each side before it is cut
out: a window snaps to a coarse grid, and a crop that clips the object loses more than
one with some background."""
DISTINCT_IOU = 0.5
"""Shortlisted windows overlap less than this with each other."""


def windows(
    width: int,
    height: int,
    grid: tuple[int, int] | None = None,
    scales: Sequence[float] = SCALES,
    step: float = STEP,
) -> list[Window]:
    """Square windows at several scales, as fractions of the picture.

    With ``grid`` (columns, rows of a feature map), windows are whole cells of it;
    without, whole pixels.
    """
    cols, rows = grid if grid is not None else (width, height)
    out: set[Window] = set()
    for scale in scales:
        side_px = min(width, height) * scale
        w_cells = max(1, min(cols, round(side_px * cols / width)))
        h_cells = max(1, min(rows, round(side_px * rows / height)))
        for y in _starts(rows, h_cells, step):
            for x in _starts(cols, w_cells, step):
                out.add((x / cols, y / rows, (x + w_cells) / cols, (y + h_cells) / rows))
    out.discard((0.0, 0.0, 1.0, 1.0))  # the whole picture is always identified anyway
    return sorted(out)


def _starts(total: int, side: int, step: float) -> list[int]:
    if side >= total:
        return [0]
    n = int(np.ceil((total - side) / max(1.0, side * step))) + 1
    return sorted({int(v) for v in np.linspace(0, total - side, n).round()})


def to_box(window: Window, width: int, height: int, grow: float = GROW) -> Box:
    """A window grown by ``grow`` on each side, in pixels, inside the picture."""
    x0, y0, x1, y1 = window
    gx, gy = (x1 - x0) * grow, (y1 - y0) * grow
    return (
        max(0, round((x0 - gx) * width)),
        max(0, round((y0 - gy) * height)),
        min(width, round((x1 + gx) * width)),
        min(height, round((y1 + gy) * height)),
    )


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes or windows."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def window_vectors(embedder: Embedder, image: np.ndarray) -> tuple[list[Window], np.ndarray]:
    """Windows over the picture and one L2-normalised vector per window."""
    h, w = image.shape[:2]
    regional = getattr(embedder, "region_vectors", None)
    if regional is not None:
        return regional(image, lambda cols, rows: windows(w, h, (cols, rows)))
    wins = windows(w, h, scales=COARSE_SCALES, step=COARSE_STEP)
    crops = [image[b[1] : b[3], b[0] : b[2]] for b in (to_box(win, w, h, 0.0) for win in wins)]
    return wins, embed_images(embedder, crops)


def shortlist(wins: Sequence[Window], best: np.ndarray, count: int) -> list[Window]:
    """The ``count`` windows whose best match (``best``, one similarity per window)
    scores highest, no two overlapping much."""
    if count <= 0 or not len(wins):
        return []
    picked: list[Window] = []
    for i in np.argsort(-np.asarray(best), kind="stable"):
        if all(iou(wins[i], p) < DISTINCT_IOU for p in picked):
            picked.append(wins[i])
            if len(picked) == count:
                break
    return picked
