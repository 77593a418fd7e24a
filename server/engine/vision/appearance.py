"""Second stage, part two: where the colours are, compared with the reference.

Local features need texture. Flags, logos, plain packaging and cartoon art have little,
and a global embedding pools away *where* each colour sits: a vertical tricolour and a
horizontal one, or two flags with the same three colours in another order, pool to
nearly the same vector. A coarse grid of colours compares that layout directly: the
thing is cut down to ``GRID`` x ``GRID`` cells of CIELAB colour (area-averaged), the
lightness of each grid is standardised (exposure, contrast and gamma move it; hue much
less), and the distance between query and reference is averaged over the cells the
reference covers (a cut-out's transparent background counts for nothing).

A detector's box, or a located window, is looser than the reference's frame, by an
unknown amount: the query is compared as it is and shrunk by each of ``SHRINKS`` per
side, and the best of those alignments counts. The comparison assumes the thing is
roughly upright in the picture (as a card held to a camera, a product on a shelf); a
thing turned on its side loses this evidence, not the global or geometric one.

It raises top-1, open-set AUROC and accuracy on the benchmark's crops of both
datasets (RESULTS.md, "Design choices").

``find`` uses the same cells as a colour template: where in a whole picture would a
given reference's layout fit best. Locating uses it to give textureless things a box of
their own shape (``Identifier.regions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

GRID = 6
"""Cells per side: coarse enough to forgive a loose box, fine enough to tell layouts
apart (4 and 8 did about as well; RESULTS.md, "Design choices")."""
SHRINKS = (0.0, 0.05, 0.1)
"""Share of the query's width/height cut from each side before comparing; the best
alignment wins (a detector's box is up to about a tenth looser than the thing)."""
LIGHTNESS_SPREAD = 25.0
"""Standardised lightness is scaled to this spread (in OpenCV's 8-bit L units, 0-255),
so it weighs about as much as the colour channels of a typical picture."""
LIGHTNESS_FLOOR = 5.0
"""Added to the lightness spread before dividing: a flat grey thing is not blown up
into noise."""
FAR = 100.0
"""A cell distance at or beyond this counts as entirely different."""
SEARCH_SIDE = 160
"""``find`` searches a copy of the picture this many pixels on its longer side."""
SEARCH_SCALES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Box sides ``find`` tries, as shares of the picture's shorter side."""
ALPHA_WORK_SIDE = 128
"""A cut-out (RGBA) is averaged down to this many pixels on its longer side before its
cells are measured."""
MIN_SIDE = 2 * GRID
"""Smaller pictures are enlarged (nearest neighbour) to this many pixels on their
shorter side first, so that every cell of every alignment holds pixels."""


@dataclass(frozen=True)
class Layout:
    """A thing's colour layout: ``GRID`` x ``GRID`` cells of 8-bit CIELAB (OpenCV's
    encoding: L 0-255, a and b offset by 128) and how much of each cell it covers."""

    lab: np.ndarray
    """(GRID, GRID, 3) float32."""
    cover: np.ndarray
    """(GRID, GRID) float32 in [0, 1]: the alpha channel's mean over the cell, 1 for an
    opaque image."""
    aspect: float = 1.0
    """Width / height of the picture it describes (stored beside it)."""

    def to_bytes(self) -> bytes:
        """Compact storage: (GRID, GRID, 4) uint8, cover last."""
        packed = np.dstack([self.lab, self.cover * 255.0])
        return np.clip(np.rint(packed), 0, 255).astype(np.uint8).tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes, aspect: float = 1.0) -> Layout:
        """The inverse of ``to_bytes`` (the aspect is stored apart).

        Raises:
            ValueError: the blob is not a layout of this ``GRID``.
        """
        if len(blob) != GRID * GRID * 4:
            raise ValueError(f"a {GRID}x{GRID} layout has {GRID * GRID * 4} bytes, not {len(blob)}")
        packed = np.frombuffer(blob, dtype=np.uint8).reshape(GRID, GRID, 4).astype(np.float32)
        return cls(packed[:, :, :3], packed[:, :, 3] / 255.0, aspect)


def _grids(image: np.ndarray, shares: Sequence[float]) -> list[Layout]:
    """The layout of ``image`` with each of ``shares`` cut from every side: cell means
    from one summed-area table, so every alignment costs the same few lookups."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    h, w = image.shape[:2]
    aspect = w / h
    if min(h, w) < MIN_SIDE:  # enlarge a tiny picture so that every cell holds pixels
        scale = MIN_SIDE / min(h, w)
        size = (max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
        h, w = image.shape[:2]
    if image.shape[2] == 4:
        # Alpha-weighted colours: what lies under a transparent background never counts.
        # Weighted in 16-bit integers, then area-averaged down to a small working copy
        # (cell means barely move; the float work then costs the same for any size).
        alpha = np.ascontiguousarray(image[:, :, 3])
        paint = cv2.multiply(
            np.ascontiguousarray(image[:, :, :3]), cv2.merge([alpha] * 3), dtype=cv2.CV_16U
        )
        scale = ALPHA_WORK_SIDE / max(h, w)
        if scale < 1.0:
            size = (max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale)))
            paint = cv2.resize(paint, size, interpolation=cv2.INTER_AREA)
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
            h, w = alpha.shape
        # Both over 255: colour x alpha (as a share) and alpha (as a share).
        planes = np.dstack([paint, alpha]).astype(np.float32) / 255.0
    else:
        planes = np.ascontiguousarray(image[:, :, :3])
    boxes = np.array(
        [
            (int(w * share), int(h * share), w - int(w * share), h - int(h * share))
            for share in shares
        ],
        dtype=np.float64,
    )
    total, area = _cell_sums(cv2.integral(planes), boxes)  # (shares, GRID, GRID, channels)
    if planes.shape[2] == 4:
        mass = total[..., 3]
        colour = total[..., :3] / np.maximum(mass, 1e-6)[..., None]
        cover = mass / area
    else:
        colour = total / area[..., None]
        cover = np.ones(area.shape)
    lab = _to_lab(colour)  # every alignment's cells in one conversion
    return [Layout(lab[i], cover[i].astype(np.float32), aspect) for i in range(len(shares))]


def layout(image: np.ndarray) -> Layout:
    """The colour layout of an RGB or RGBA uint8 image (alpha marks what is the thing)."""
    return _grids(image, (0.0,))[0]


def query_layouts(image: np.ndarray) -> tuple[Layout, ...]:
    """The layouts a query is compared by: the image as it is and with each of
    ``SHRINKS`` cut from every side."""
    return tuple(_grids(image, SHRINKS))


def _standardised(lab: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``lab`` (..., GRID, GRID, 3) with each grid's lightness standardised, weighted by
    ``weight`` (GRID, GRID)."""
    total = float(weight.sum())
    light = lab[..., 0]
    mean = (light * weight).sum(axis=(-2, -1), keepdims=True) / total
    spread = np.sqrt((((light - mean) ** 2) * weight).sum(axis=(-2, -1), keepdims=True) / total)
    out = lab.copy()
    out[..., 0] = (light - mean) / (spread + LIGHTNESS_FLOOR) * LIGHTNESS_SPREAD
    return out


def similarity(queries: Sequence[Layout], reference: Layout) -> float | None:
    """How well the query's colour layout (at its best alignment) matches the
    reference's: 1 identical, 0 every cell entirely different. None when the reference
    covers nothing or there is no query layout."""
    weight = reference.cover
    total = float(weight.sum())
    if total < 1e-6 or not queries:
        return None
    ref = _standardised(reference.lab, weight)
    query = _standardised(np.stack([q.lab for q in queries]), weight)
    dist = np.sqrt(((query - ref) ** 2).sum(axis=-1))
    worst = (weight * np.minimum(dist, FAR)).sum(axis=(-2, -1)).min()
    return 1.0 - float(worst) / (FAR * total)


def _cell_sums(table: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell sums (n, GRID, GRID, channels) and pixel counts (n, GRID, GRID, at least
    1) of ``boxes`` (n, 4: x0, y0, x1, y1 in pixels) cut into ``GRID`` x ``GRID`` cells,
    from a summed-area table (H + 1, W + 1, channels)."""
    t = np.linspace(0.0, 1.0, GRID + 1)
    xs = np.rint(boxes[:, 0:1] + (boxes[:, 2:3] - boxes[:, 0:1]) * t).astype(np.int64)
    ys = np.rint(boxes[:, 1:2] + (boxes[:, 3:4] - boxes[:, 1:2]) * t).astype(np.int64)
    # The (GRID + 1)^2 cell corners of every box in one flat gather, then differences.
    flat = table.reshape(-1, table.shape[2])
    corners = np.take(flat, ys[:, :, None] * table.shape[1] + xs[:, None, :], axis=0)
    sums = corners[:, 1:, 1:] - corners[:, :-1, 1:] - corners[:, 1:, :-1] + corners[:, :-1, :-1]
    area = (ys[:, 1:] - ys[:, :-1])[:, :, None] * (xs[:, 1:] - xs[:, :-1])[:, None, :]
    return sums, np.maximum(area, 1).astype(np.float32)


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    """Mean cell colours (n, GRID, GRID, 3), RGB 0-255 -> 8-bit CIELAB as float32."""
    cells = np.minimum(rgb + 0.5, 255.0).astype(np.uint8).reshape(-1, GRID, 3)
    return cv2.cvtColor(cells, cv2.COLOR_RGB2LAB).astype(np.float32).reshape(-1, GRID, GRID, 3)


def _search_boxes(width: int, height: int, aspect: float) -> np.ndarray:
    """Candidate boxes (n, 4) for a thing of about ``aspect``: sides of ``SEARCH_SCALES``
    of the picture's shorter side, the aspect as given and a quarter either way
    (perspective), every sixth of the box's side."""
    short = min(width, height)
    out = []
    for scale in SEARCH_SCALES:
        for asp in (aspect / 1.25, aspect, aspect * 1.25):
            area = (scale * short) ** 2
            bw = float(np.sqrt(area * asp))
            bh = area / bw
            if bw > width or bh > height:
                continue
            step = max(2.0, min(bw, bh) / 6)
            xs = np.arange(0.0, width - bw + 1e-6, step)
            ys = np.arange(0.0, height - bh + 1e-6, step)
            gx, gy = np.meshgrid(xs, ys)
            out.append(np.stack([gx.ravel(), gy.ravel(), gx.ravel() + bw, gy.ravel() + bh], 1))
    return np.concatenate(out) if out else np.zeros((0, 4))


def find(image: np.ndarray, reference: Layout) -> tuple[float, tuple[int, int, int, int]] | None:
    """Where in ``image`` (RGB) the thing ``reference`` describes would best fit: a
    coarse colour-template search over boxes of the reference's shape (see
    ``_search_boxes``) on a ``SEARCH_SIDE``-pixel copy. Returns the best similarity and
    that box in ``image``'s pixels (x0, y0, x1, y1), or None when nothing fits."""
    weight = reference.cover
    total = float(weight.sum())
    if total < 1e-6 or image.ndim != 3:
        return None
    h, w = image.shape[:2]
    scale = min(1.0, SEARCH_SIDE / max(h, w))
    small = (
        cv2.resize(
            np.ascontiguousarray(image[:, :, :3]),
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA,
        )
        if scale < 1.0
        else image[:, :, :3]
    )
    sh, sw = small.shape[:2]
    boxes = _search_boxes(sw, sh, reference.aspect)
    if not len(boxes):
        return None
    table = cv2.integral(np.ascontiguousarray(small))
    sums, area = _cell_sums(table, boxes)
    query = _standardised(_to_lab(sums.astype(np.float32) / area[..., None]), weight)
    dist = np.sqrt(((query - _standardised(reference.lab, weight)) ** 2).sum(axis=-1))
    sims = 1.0 - (weight * np.minimum(dist, FAR)).sum(axis=(-2, -1)) / (FAR * total)
    best = int(np.argmax(sims))
    x0, y0, x1, y1 = boxes[best] / scale
    box = (max(0, int(x0)), max(0, int(y0)), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1))))
    return float(sims[best]), box


def appearance_bonus(sim: float | None, weight: float, centre: float) -> float:
    """Score change for a layout similarity: ``weight`` x (sim - ``centre``), so a layout
    matching better than an unrelated thing's typically does adds, a worse one takes
    away; no change without a similarity."""
    return 0.0 if sim is None else weight * (sim - centre)
