"""Backgrounds for synthetic views: photos scaled to cover a frame, or procedural ones
(seeded shapes and gradients) where no photo may be used."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

Size = tuple[int, int]
"""(width, height) in pixels."""
BACKGROUNDS_DIR = Path(__file__).parent / "assets" / "backgrounds"
"""Background photos shipped with identify (see the README there for their licences)."""


def load_backgrounds(
    paths: Iterable[Path], size: Size = (640, 480), rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Decode background photos and crop/resize each to cover ``size``.

    Unreadable files (placeholders, truncated files, non-images, decompression bombs) are
    skipped with a log line, so a folder of mixed files is fine.

    Args:
        paths: Image files.
        size: Target (width, height).
        rng: Chooses the crop position; centred when ``None``.

    Returns:
        RGB uint8 arrays of exactly ``size``, in the order of ``paths``.
    """
    out = []
    for path in paths:
        image = _read_rgb(Path(path), size)
        if image is None:
            continue
        out.append(cover(image, size, rng))
    return out


def fallback_background(rng: np.random.Generator, size: Size = (640, 480)) -> np.ndarray:
    """A procedural, photo-like background for when no background photo is available.

    A two-colour gradient, low-frequency colour blotches, a clutter of random shapes and
    a little blur, so that views made on it are neither flat nor trivial to segment.

    Args:
        rng: Source of every random choice.
        size: (width, height).

    Returns:
        RGB uint8 array (height, width, 3).
    """
    width, height = size
    c0, c1 = rng.uniform(30, 225, size=(2, 3))
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.ogrid[0:height, 0:width]
    ramp = (xs * math.cos(angle) + ys * math.sin(angle)).astype(np.float32)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    # The gradient and blotches are smooth, so build them small and upscale (fast).
    small = (c0 + (c1 - c0) * cv2.resize(ramp, (width // 8, height // 8))[..., None]).astype(
        np.float32
    )
    small += cv2.resize(rng.uniform(-40, 40, size=(6, 8, 3)).astype(np.float32), small.shape[1::-1])
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    canvas = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(6, 16))):
        _draw_random_shape(canvas, rng)
    return cv2.GaussianBlur(canvas, (0, 0), 1.2)


def cover(image: np.ndarray, size: Size, rng: np.random.Generator | None = None) -> np.ndarray:
    """Crop (and if needed resize) ``image`` so it exactly fills ``size``.

    An image already at least ``size`` and at most 1.5 times it is only cropped, so
    backgrounds prepared slightly larger than the frame give varied crops for free.
    """
    width, height = size
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    if scale > 1.0 or scale < 1 / 1.5:
        new_w, new_h = max(width, math.ceil(w * scale)), max(height, math.ceil(h * scale))
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interp)
        h, w = image.shape[:2]
    x0 = int(rng.integers(0, w - width + 1)) if rng is not None else (w - width) // 2
    y0 = int(rng.integers(0, h - height + 1)) if rng is not None else (h - height) // 2
    return np.ascontiguousarray(image[y0 : y0 + height, x0 : x0 + width])


def _read_rgb(path: Path, size: Size) -> np.ndarray | None:
    """Decode an image file to RGB, letting JPEG decode at reduced size when it can."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", size)  # JPEG only: decode at 1/2, 1/4, 1/8 but still >= size
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        log.info("skipping background %s: %s", path, exc)
        return None


def _draw_random_shape(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """Draw one random filled rectangle, disc, polygon or thick line (in place)."""
    height, width = canvas.shape[:2]
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    kind = int(rng.integers(4))
    p = rng.uniform([0, 0], [width, height], size=(4, 2)).astype(np.int32)
    if kind == 0:
        cv2.rectangle(canvas, tuple(map(int, p[0])), tuple(map(int, p[1])), colour, -1)
    elif kind == 1:
        radius = int(rng.integers(5, max(6, min(width, height) // 4)))
        cv2.circle(canvas, tuple(map(int, p[0])), radius, colour, -1, cv2.LINE_AA)
    elif kind == 2:
        cv2.fillPoly(canvas, [p[:3]], colour, cv2.LINE_AA)
    else:
        thickness = int(rng.integers(2, 12))
        cv2.line(
            canvas, tuple(map(int, p[0])), tuple(map(int, p[1])), colour, thickness, cv2.LINE_AA
        )
