"""Second stage, part three: a flat thing seen flat and compared pixel by pixel.

Cards of one deck, editions of a trading card, album covers with a changed sticker:
near-identical flat things differ in a few small details (7 pips against 8, a symbol,
a date). A global embedding pools those away, and local features on repeated marks
(pips) match the wrong card as well as the right one. What tells them apart is the
thing seen *flat and aligned with the reference*: the query's outline (a quadrilateral,
from the quad finder or the detector) is warped onto the reference's rectangle, the
alignment refined to the pixel (ECC, Evangelidis & Psarakis 2008, on an affine model),
and the two compared densely.

The comparison is a correlation of the two aligned images in colour (CIELAB, zero
mean, unit norm), so exposure and contrast do not move it, colour counts (two flags
with the same stripes in other colours are not alike), and every pixel counts (a
missing pip is a few per cent of the card, not a few keypoints among hundreds).

Only references that are flat rectangles (opaque over ``FLAT_FILL`` of their frame) get
this comparison: for a cut-out there is no rectangle to align.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from server.engine.project.runners import DetectorConfig
from server.engine.vision.detectors.quad import MAX_AREA, WORK_SIDE, QuadFinder, edges
from server.engine.vision.rectify import is_usable, order_corners

SIDE = 96
"""Longer side of the canonical image both sides are compared at: the pips, digits and
symbols that tell cards apart span several pixels there, and one comparison costs well
under a millisecond."""
BLUR_SIGMA = 1.0
"""Both images are smoothed by this much (in canonical pixels) before comparing, so a
camera's blur and a print's sharpness meet halfway and ECC converges."""
FLAT_FILL = 0.9
"""A reference is a flat rectangle when its opaque part covers this share of its
bounding box (a card's rounded corners leave about 2 % out; a cut-out far more)."""
ECC_ITERATIONS = 20
ECC_EPSILON = 1e-4
MIN_QUAD_SHARE = 0.2
"""A quad found in a crop must cover this share of it to be the thing (a detector's
crop is mostly the thing; a smaller quad is a part of it, or of the background)."""
LOOSER = (0.03, 0.05, 0.08, 0.12)
"""Coarser and coarser simplifications (shares of the perimeter) tried on an outline
that is not a clean quadrilateral."""
LARGEST = 3
"""Outlines tried that way, largest first."""


_FINDER = QuadFinder(DetectorConfig(kind="quad", min_area=MIN_QUAD_SHARE, confidence=0.0))


@dataclass(frozen=True)
class Seen:
    """A flat thing at canonical size, prepared for comparison: grey (float32, zero
    mean, unit norm; what ECC aligns) and colour (CIELAB, each channel zero mean, the
    three together of unit norm; what is compared once aligned)."""

    grey: np.ndarray
    colour: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.grey.shape[1], self.grey.shape[0]


@dataclass(frozen=True)
class Flat(Seen):
    """A reference seen flat, and where the flat thing lies in the reference picture
    (x0, y0, x1, y1: its opaque part)."""

    box: tuple[int, int, int, int] = (0, 0, 0, 0)


def canonical_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` thing at ``SIDE`` on its longer side."""
    scale = SIDE / max(width, height)
    return max(8, round(width * scale)), max(8, round(height * scale))


def flat_reference(image: np.ndarray) -> Flat | None:
    """The canonical image of a reference (RGB or RGBA), or None when it is not a flat
    rectangle."""
    h, w = image.shape[:2]
    box = (0, 0, w, h)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[..., 3] > 127
        ys, xs = np.nonzero(alpha)
        if not len(xs):
            return None
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        if alpha[box[1] : box[3], box[0] : box[2]].mean() < FLAT_FILL:
            return None
        image = image[box[1] : box[3], box[0] : box[2]]
        rgb = image[..., :3].astype(np.float32)
        a = image[..., 3:4].astype(np.float32) / 255.0
        image = (rgb * a + 255.0 * (1 - a)).astype(np.uint8)  # rounded corners on white
        h, w = image.shape[:2]
    seen = _prepared(cv2.resize(image, canonical_size(w, h), interpolation=cv2.INTER_AREA))
    return Flat(seen.grey, seen.colour, box)


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.reshape(-1, x.shape[2]).mean(axis=0) if x.ndim == 3 else x - x.mean()
    return x / (float(np.linalg.norm(x)) or 1.0)


def _prepared(image: np.ndarray) -> Seen:
    """Smoothed grey and colour of an RGB image (see ``Seen``)."""
    rgb = cv2.GaussianBlur(image[..., :3].astype(np.float32) / 255.0, (0, 0), BLUR_SIGMA)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return Seen(_unit(grey), _unit(cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)))


def outline(image: np.ndarray) -> np.ndarray | None:
    """The largest usable quadrilateral outline in a crop (ordered corners), when it
    covers at least ``MIN_QUAD_SHARE`` of it; None otherwise.

    The quad finder first; when it finds none (a hand or a shadow bends the outline,
    the background's edges run into it), the largest outlines are simplified more and
    more coarsely (``LOOSER``) until one has four corners."""
    found = _FINDER.detect(image)  # larger first
    if found:
        return found[0].quad
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    contours, _ = cv2.findContours(
        cv2.dilate(edges(small), np.ones((3, 3), np.uint8)), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE
    )
    total = small.shape[0] * small.shape[1]
    hulls = sorted((cv2.convexHull(c) for c in contours), key=lambda c: -cv2.contourArea(c))
    for hull in hulls[:LARGEST]:
        if cv2.contourArea(hull) < MIN_QUAD_SHARE * total:
            break
        for share in LOOSER:
            poly = cv2.approxPolyDP(hull, share * cv2.arcLength(hull, True), True)
            if len(poly) < 4:
                break
            if len(poly) == 4:
                quad = order_corners(poly.reshape(4, 2))
                if is_usable(quad) and cv2.contourArea(quad) < MAX_AREA * total:
                    return quad / scale
    return None


def upright(quad: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    """How an outline found in the picture (corners in any order) lies on a reference
    of ``size`` (width, height): its corners ordered from the top left of the picture,
    the thing taken as upright (as ``appearance`` takes it: a card or cover held to a
    camera). When its longer sides run the other way (a portrait card seen lying), it
    is turned a quarter either way: both are returned. Empty for an unusable quad."""
    quad = order_corners(quad)
    if not is_usable(quad):
        return []
    sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    landscape = sides[0] + sides[2] > sides[1] + sides[3]
    if landscape != (size[0] > size[1]) and size[0] != size[1]:
        return [np.roll(quad, -1, axis=0), np.roll(quad, 1, axis=0)]
    return [quad]


def warped(image: np.ndarray, quad: np.ndarray, size: tuple[int, int]) -> Seen:
    """The inside of ``quad`` (corners clockwise from the one that goes to the top
    left) warped to ``size`` (width, height) and prepared for comparison."""
    w, h = size
    target = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
    warp = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    flat = cv2.warpPerspective(
        image, warp, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )
    return _prepared(flat)


def screened(views: list[Seen], ref: Flat) -> tuple[Seen, float] | None:
    """The query view (of ``views``, ``warped`` at ``ref.size``) that lies best on the
    reference as warped (grey correlation), and its colour correlation before any
    refinement: what ranks the candidates worth refining. None when no view fits."""
    fits = [v for v in views if v.size == ref.size]
    if not fits:
        return None
    view = max(fits, key=lambda v: float((ref.grey * v.grey).sum()))
    return view, float((ref.colour * view.colour).sum())


def refined(view: Seen, ref: Flat) -> float:
    """The colour correlation of a query view and the reference after ECC has aligned
    their grey images (as warped when it does not converge)."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPSILON)
    everywhere = np.full(ref.grey.shape, 255, np.uint8)
    try:  # no smoothing of its own (1): both are smoothed already
        _, warp = cv2.findTransformECC(
            ref.grey,
            view.grey,
            np.eye(2, 3, dtype=np.float32),
            cv2.MOTION_AFFINE,
            criteria,
            everywhere,
            1,
        )
    except cv2.error:  # did not converge: compare as warped
        return float((ref.colour * view.colour).sum())
    colour = cv2.warpAffine(
        view.colour,
        warp,
        ref.size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return float((ref.colour * _unit(colour)).sum())


def similarity(views: list[Seen], ref: Flat) -> float | None:
    """How alike the query's ``views`` and the reference are once aligned (``screened``,
    then ``refined``); None when there is nothing to compare."""
    seen = screened(views, ref)
    return None if seen is None else refined(seen[0], ref)


def bonus(sim: float | None, weight: float, centre: float) -> float:
    """Score bonus for an aligned similarity: ``weight`` x (sim - ``centre``) above
    ``centre``, nothing below it or without one.

    Only ever a bonus, as the geometric one is: a high correlation of two aligned
    pictures has one explanation (the same thing), a low one has two (another thing,
    or an outline found wrong: a pale flag on a pale wall), and the second must not
    push the right answer down."""
    return 0.0 if sim is None else weight * max(0.0, sim - centre)
