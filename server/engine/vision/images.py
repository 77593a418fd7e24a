"""Safe image decoding with named limits.

Every image that enters the system passes through ``decode_image``: empty, truncated,
non-image and decompression-bomb inputs are rejected with one clear ``ImageRejected``
before any large allocation happens.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from server.engine.errors import ImageRejected

MAX_IMAGE_BYTES = 40 * 1024 * 1024
"""Largest encoded image accepted (bytes)."""
MAX_IMAGE_PIXELS = 50_000_000
"""Largest decoded image accepted (width x height); bigger is treated as a bomb."""
MIN_IMAGE_SIDE = 8
"""Smallest useful image side in pixels."""
MAX_WORK_SIDE = 2048
"""Longest side an image is worked on at (pictures are located at 512 px, crops embedded
at the model's input size, keypoints found at 512 px): a larger one is reduced as it is
decoded, so a 49-megapixel upload costs what a 4-megapixel one does downstream."""
WORK_MIN_SIDE = 1024
"""A large JPEG to be identified is decoded at a half, quarter or eighth of its size
while decoding (see ``decode_image``), never below this on its shorter side."""
STORED_REFERENCE_TYPES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
"""Formats a reference is kept in as uploaded (its bytes, unchanged); others are
re-encoded (``stored_form``)."""
MAX_ASPECT_RATIO = 50.0
"""Longest side over shortest side accepted: a wide panorama is about 10, and a thinner
strip holds no object to identify."""


def read_image_bytes(path: Path) -> bytes:
    """Read a file with the byte limit applied before reading it whole."""
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise ImageRejected(
                f"{path.name}: {size} bytes is over the {MAX_IMAGE_BYTES} byte limit"
            )
        return path.read_bytes()
    except OSError as exc:
        raise ImageRejected(f"{path.name}: cannot read: {exc.strerror or exc}") from None


def decode_image(
    data: bytes,
    name: str = "image",
    *,
    keep_alpha: bool = False,
    min_side: int | None = None,
    max_side: int | None = None,
) -> np.ndarray:
    """Decode encoded image bytes into an RGB (or RGBA) uint8 array.

    Args:
        data: The encoded file contents.
        name: Used in error messages.
        keep_alpha: Return RGBA when the image has transparency.
        min_side: When given, a JPEG whose sides are both at least twice this is decoded
            at a half, quarter or eighth of its size (libjpeg scales while decoding,
            several times faster than decoding in full), never below ``min_side`` on
            its shorter side. Other formats decode in full.
        max_side: When given, an image whose longer side is over this is reduced (by a
            whole factor, box-filtered) to at most this, before it becomes an array.

    Raises:
        ImageRejected: empty, too big, not an image, truncated, or a decompression bomb.
    """
    if not data:
        raise ImageRejected(f"{name}: the file is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected(f"{name}: {len(data)} bytes is over the {MAX_IMAGE_BYTES} byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageRejected(
                    f"{name}: {width}x{height} pixels is over the {MAX_IMAGE_PIXELS} pixel limit"
                )
            if min(width, height) < MIN_IMAGE_SIDE:
                raise ImageRejected(f"{name}: {width}x{height} is too small")
            if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
                raise ImageRejected(
                    f"{name}: {width}x{height} is a strip, not a picture "
                    f"(sides over {MAX_ASPECT_RATIO:g}:1)"
                )
            if min_side is not None and img.format == "JPEG":
                # draft() picks the smallest DCT scale whose size is at least the one asked.
                scale = max(min_side / min(width, height), 1 / 8)
                if scale <= 0.5:
                    img.draft(img.mode, (math.ceil(width * scale), math.ceil(height * scale)))
            img.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(f"{name}: too many pixels (decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageRejected(f"{name}: not an image (or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"{name}: damaged or truncated image ({exc})") from None
    if min(img.size) < MIN_IMAGE_SIDE:
        raise ImageRejected(f"{name}: {img.size[0]}x{img.size[1]} is too small")
    if max_side is not None and max(img.size) > max_side:
        if img.mode not in ("RGB", "RGBA", "L", "LA"):
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        img = img.reduce(math.ceil(max(img.size) / max_side))
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    mode = "RGBA" if keep_alpha and has_alpha else "RGB"
    if has_alpha and mode == "RGB":
        # Flatten on white: a cut-out on paper, as a reference print would look.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(canvas, rgba)
    return np.ascontiguousarray(np.asarray(img.convert(mode)))


def load_image(path: Path, *, keep_alpha: bool = False) -> np.ndarray:
    """Read and decode an image file (see ``decode_image``)."""
    return decode_image(read_image_bytes(path), path.name, keep_alpha=keep_alpha)


def flatten_alpha(image: np.ndarray, background: int = 255) -> np.ndarray:
    """RGBA -> RGB composited on a flat grey level; RGB passes through."""
    if image.shape[2] == 3:
        return image
    alpha = image[:, :, 3:4].astype(np.float32) / 255.0
    rgb = image[:, :, :3].astype(np.float32) * alpha + background * (1.0 - alpha)
    return rgb.astype(np.uint8)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """Encode an RGB array as JPEG bytes."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:  # pragma: no cover - OpenCV only fails on empty input
        raise ImageRejected("cannot encode image as JPEG")
    return buf.tobytes()


def content_hash(data: bytes) -> str:
    """Stable content hash used to skip unchanged files when indexing."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def stored_form(data: bytes, image: np.ndarray) -> tuple[bytes, str]:
    """What to keep on disk of a reference uploaded as ``data`` (decoded as ``image``):
    the uploaded bytes themselves when they are JPEG, PNG or WebP (never larger than
    what was sent), else a PNG (with transparency) or JPEG of the decoded image, its
    longer side at most ``MAX_WORK_SIDE``. Returns the bytes and their file suffix."""
    try:
        fmt = Image.open(io.BytesIO(data)).format
    except (OSError, UnidentifiedImageError):  # pragma: no cover - decoded before
        fmt = None
    if fmt in STORED_REFERENCE_TYPES:
        return data, STORED_REFERENCE_TYPES[fmt]
    image, _ = downscale(image, MAX_WORK_SIDE)
    if image.shape[2] == 4:
        _, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA))
        return buf.tobytes(), ".png"
    return encode_jpeg(image, 95), ".jpg"


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image with its longer side at most ``max_side`` (area-averaged), and the scale
    applied (1.0 when it was small enough)."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, 1.0
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale
