"""Synthetic scenes: several references in one picture, on a real background, each in
perspective, some partly covered by others, where every thing's corners and visible box
are known exactly.

What a detector is trained and measured on when no labelled photos of a project's things
exist: cut the references out, paste them onto real backgrounds, and distort the whole
picture the way a camera does (cut, paste and learn; Dwibedi et al., 2017). Each thing
is placed as ``synth.camera_view`` places one, smaller, and tried a few times for a spot
that does not hide an earlier thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from server.engine.vision import synth
from server.engine.vision.backdrops import cover
from server.engine.vision.locate import Box, iou

SIZE_RANGE = (0.22, 0.5)
"""A thing's longer side, as a share of the picture's shorter side."""
PLACEMENT_TRIES = 12
"""Spots tried for a thing before one that overlaps earlier things is taken."""
MAX_PLACED_IOU = 0.25
"""A spot is good when the thing's box overlaps no earlier thing's box more than this."""


@dataclass(frozen=True)
class Placed:
    """One thing of a scene."""

    index: int
    """Which of the references given."""
    quad: np.ndarray
    """Its corners (4, 2), clockwise from the top left of the reference."""
    box: Box
    """The box of its pixels that remain visible."""
    visible: float
    """Share of its pixels not covered by things placed after it (0-1)."""


@dataclass(frozen=True)
class Scene:
    """A rendered picture and what is in it."""

    frame: np.ndarray
    things: list[Placed]


def scene(
    references: Sequence[np.ndarray],
    background: np.ndarray,
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = (640, 480),
    strength: float = 1.0,
) -> Scene:
    """Render every reference of ``references`` (RGB or RGBA; alpha is honoured) into
    one picture of ``size`` over ``background``, in the given order (later ones on top)."""
    s = max(0.0, float(strength))
    width, height = size
    frame = cover(background[..., :3], size, rng)
    owner = np.full((height, width), -1, np.int32)
    quads: list[np.ndarray] = []
    areas: list[int] = []
    for i, ref in enumerate(references):
        long_side = min(width, height) * rng.uniform(*SIZE_RANGE)
        premult = synth.premultiplied(ref, long_side)
        quad = _spot(
            premult, long_side, size, rng, s, [synth.quad_box(q, width, height) for q in quads]
        )
        frame, _ = synth.composite(premult, quad, frame, rng, s)
        mask = _mask(premult, quad, size)
        owner[mask] = i
        quads.append(quad)
        areas.append(int(mask.sum()))
    things = []
    for i, (quad, area) in enumerate(zip(quads, areas, strict=True)):
        ys, xs = np.nonzero(owner == i)
        if not len(xs) or not area:
            continue
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        things.append(Placed(i, quad, box, len(xs) / area))
    return Scene(synth.camera_finish(frame, rng, s), things)


def _spot(
    premult: np.ndarray,
    long_side: float,
    size: tuple[int, int],
    rng: np.random.Generator,
    s: float,
    taken: list[Box],
) -> np.ndarray:
    """Corners for a thing: the first of ``PLACEMENT_TRIES`` random spots whose box
    overlaps no box in ``taken`` by more than ``MAX_PLACED_IOU``, else the least
    overlapping one."""
    best: tuple[float, np.ndarray] | None = None
    for _ in range(PLACEMENT_TRIES):
        quad = synth.random_quad(premult.shape[1], premult.shape[0], long_side, size, rng, s)
        box = synth.quad_box(quad, *size)
        overlap = max((iou(box, t) for t in taken), default=0.0)
        if overlap <= MAX_PLACED_IOU:
            return quad
        if best is None or overlap < best[0]:
            best = (overlap, quad)
    assert best is not None
    return best[1]


def _mask(premult: np.ndarray, quad: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame's pixels the thing's opaque part covers."""
    h, w = premult.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    warp = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    alpha = cv2.warpPerspective(premult[..., 3], warp, size, flags=cv2.INTER_LINEAR)
    return alpha > 127
