"""Camera-like synthetic views of a reference image.

``identify verify`` uses these to test a reference set honestly (a stored vector always
matches itself, a phone photo of the printed thing does not), and the accuracy benchmark
uses them to build its queries. A view simulates a handheld photo: scale, rotation and
perspective, cut-out compositing, uneven lighting, occasional occlusion, blur, sensor
noise and JPEG. Everything random comes from the ``numpy.random.Generator`` passed in,
so a seed reproduces a view exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np

from server.engine.errors import ImageRejected
from server.engine.vision.backdrops import Size, cover


@dataclass(frozen=True, eq=False)
class View:
    """One synthetic camera frame showing a reference.

    Attributes:
        frame: The full camera frame, RGB uint8 (H, W, 3).
        bbox: ``(x1, y1, x2, y2)`` of the object in the frame, ``x2``/``y2`` exclusive, so
            ``frame[y1:y2, x1:x2]`` is the object. It is the tight box of the warped quad,
            clipped to the frame; for a cut-out (RGBA reference) it is the tight box of
            its opaque pixels, since that is what a detector would report.
        quad: (4, 2) float32 corners of the reference (top-left, top-right,
            bottom-right, bottom-left) in frame coordinates; may reach outside the frame.
    """

    frame: np.ndarray
    bbox: tuple[int, int, int, int]
    quad: np.ndarray


def camera_view(
    reference: np.ndarray,
    background: np.ndarray,
    rng: np.random.Generator,
    *,
    size: Size = (640, 480),
    strength: float = 1.0,
) -> View:
    """Render ``reference`` as if photographed in front of ``background``.

    Args:
        reference: RGB (H, W, 3) or RGBA (H, W, 4) uint8 image; grey also works. Alpha
            is honoured, so a cut-out is composited, not pasted as a rectangle.
        background: RGB uint8 image of any size; it is cropped/resized to cover ``size``.
        rng: Source of every random choice.
        size: Frame (width, height) in pixels.
        strength: Scales every distortion range: 0 is nearly clean, 1 the default,
            1.5 harsh.

    Returns:
        The rendered view.

    Raises:
        ImageRejected: If the reference has no pixels.
    """
    s = max(0.0, float(strength))
    width, height = size
    bg = cover(_as_channels(background, 3), size, rng)
    if rng.random() < 0.5:
        bg = np.ascontiguousarray(bg[:, ::-1])
    long_side = min(width, height) * rng.uniform(max(0.1, 0.6 - 0.25 * s), min(0.95, 0.6 + 0.2 * s))
    premult = premultiplied(reference, long_side)
    quad = random_quad(premult.shape[1], premult.shape[0], long_side, size, rng, s)
    frame, bbox = composite(premult, quad, bg, rng, s)
    if rng.random() < min(1.0, 0.3 * s):
        _occlude(frame, bg, quad, rng, s)
    return View(frame=camera_finish(frame, rng, s), bbox=bbox, quad=quad)


def camera_finish(frame: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """What the camera does to a whole picture: light and colour, sometimes blur,
    sensor noise, and JPEG at a random quality (all scaled by the strength ``s``)."""
    frame = cv2.LUT(frame, _photometric_lut(rng, s))
    if rng.random() < 0.5 * min(1.0, s):
        frame = _blur(frame, rng, s)
    frame = _add_noise(frame, rng, s)
    quality = int(rng.integers(max(15, round(90 - 50 * s)), max(16, round(95 - 5 * s)) + 1))
    return _jpeg_roundtrip(frame, quality)


def crop_object(
    view: View, rng: np.random.Generator | None = None, pad: float = 0.08
) -> np.ndarray:
    """Cut the object out of a view the way a detector's box would.

    Args:
        view: The view to crop.
        rng: When given, each side's padding is jittered (from slightly inside the
            object to twice ``pad``), like a real detector's loose boxes.
        pad: Padding per side as a fraction of the box's width/height.

    Returns:
        An RGB uint8 crop with at least one pixel.
    """
    x1, y1, x2, y2 = view.bbox
    w, h = x2 - x1, y2 - y1
    factors = rng.uniform(-0.25, 2.0, size=4) if rng is not None else np.ones(4)
    left, top, right, bottom = (pad * factors * np.array([w, h, w, h])).round().astype(int)
    frame_h, frame_w = view.frame.shape[:2]
    cx1, cy1 = int(np.clip(x1 - left, 0, frame_w - 1)), int(np.clip(y1 - top, 0, frame_h - 1))
    cx2 = int(np.clip(x2 + right, cx1 + 1, frame_w))
    cy2 = int(np.clip(y2 + bottom, cy1 + 1, frame_h))
    return view.frame[cy1:cy2, cx1:cx2].copy()


def camera_crops(
    image: np.ndarray,
    backgrounds: Sequence[np.ndarray],
    rng: np.random.Generator,
    count: int,
    *,
    size: Size = (640, 480),
    strength: float = 1.0,
) -> list[np.ndarray]:
    """``count`` detector-like crops of ``image`` photographed in front of backgrounds
    drawn at random from ``backgrounds`` (see ``camera_view`` and ``crop_object``)."""
    crops = []
    for _ in range(count):
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        view = camera_view(image, bg, rng, size=size, strength=strength)
        crops.append(crop_object(view, rng))
    return crops


def _as_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Return a uint8 image with 3 (RGB) or 4 (RGBA) channels from grey/LA/RGB/RGBA."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    colour, alpha = image[..., : min(3, image.shape[2])], None
    if image.shape[2] in (2, 4):
        colour, alpha = image[..., :-1], image[..., -1:]
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    if channels == 3:
        return np.ascontiguousarray(colour)
    if alpha is None:
        alpha = np.full(colour.shape[:2] + (1,), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([colour, alpha], axis=2))


def premultiplied(reference: np.ndarray, long_side: float) -> np.ndarray:
    """Premultiplied RGBA uint8, downscaled to about the size it will be drawn.

    Premultiplying keeps interpolation (the downscale and the warp) from bleeding the
    arbitrary colour of transparent pixels into the object's edges; downscaling first
    keeps huge references fast and anti-aliased.
    """
    image = np.asarray(reference)
    if image.size == 0:
        raise ImageRejected("reference image is empty")
    h, w = image.shape[:2]
    shrink = 1.25 * long_side / max(h, w)
    new_size = (max(2, round(w * shrink)), max(2, round(h * shrink)))
    if not (image.ndim == 3 and image.shape[2] in (2, 4)):  # opaque: shrink, then add alpha
        rgb = _as_channels(image, 3)
        if shrink < 1.0:
            rgb = cv2.resize(rgb, new_size, interpolation=_shrink_interpolation(shrink))
        return _as_channels(rgb, 4)
    planes = cv2.split(_as_channels(image, 4))
    planes = [cv2.multiply(p, planes[3], scale=1 / 255) for p in planes[:3]] + [planes[3]]
    rgba = cv2.merge(planes)
    if shrink < 1.0:
        rgba = cv2.resize(rgba, new_size, interpolation=_shrink_interpolation(shrink))
    return rgba


def _shrink_interpolation(shrink: float) -> int:
    """Area averaging where aliasing would show; bilinear (much faster) for mild shrinks."""
    return cv2.INTER_AREA if shrink < 0.6 else cv2.INTER_LINEAR


def random_quad(
    w: int, h: int, long_side: float, size: Size, rng: np.random.Generator, s: float
) -> np.ndarray:
    """Corners of the reference after scale, perspective jitter, rotation and placement."""
    scale = long_side / max(w, h)
    ow, oh = max(2.0, w * scale), max(2.0, h * scale)
    quad = np.array([[-ow, -oh], [ow, -oh], [ow, oh], [-ow, oh]], np.float64) / 2
    quad += rng.uniform(-0.12 * s, 0.12 * s, size=(4, 2)) * [ow, oh]
    theta = math.radians(rng.uniform(-20 * s, 20 * s))
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    quad = quad @ rot.T
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    outside = 0.1 * s * (hi - lo)  # share of the object allowed past each frame edge
    centre = []
    for axis, limit in enumerate(size):
        a, b = -lo[axis] - outside[axis], limit - hi[axis] + outside[axis]
        centre.append(rng.uniform(a, b) if a < b else limit / 2)
    return (quad + centre).astype(np.float32)


def composite(
    premult: np.ndarray, quad: np.ndarray, bg: np.ndarray, rng: np.random.Generator, s: float
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Warp the reference onto a copy of ``bg`` (only inside the quad's box, for speed).

    All in uint8 with OpenCV's saturating arithmetic: out = colour * light + bg * (1 - a),
    where the colour is already premultiplied by its alpha a.
    """
    height, width = bg.shape[:2]
    frame = bg.copy()
    x1, y1 = np.clip(np.floor(quad.min(axis=0)).astype(int), 0, [width - 1, height - 1])
    x2, y2 = np.clip(np.ceil(quad.max(axis=0)).astype(int) + 1, [x1 + 1, y1 + 1], [width, height])
    h, w = premult.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, quad - np.array([x1, y1], np.float32))
    dsize = (int(x2 - x1), int(y2 - y1))
    warped = cv2.warpPerspective(premult, matrix, dsize, flags=cv2.INTER_LINEAR, borderValue=0)
    planes = cv2.split(warped)
    alpha = planes[3]
    light = rng.uniform(1 - 0.15 * s, 1 + 0.1 * s) * _shadow(alpha.shape, rng, s)
    colour = cv2.multiply(cv2.merge(planes[:3]), cv2.merge([light] * 3), dtype=cv2.CV_8U)
    behind = cv2.multiply(frame[y1:y2, x1:x2], cv2.merge([255 - alpha] * 3), scale=1 / 255)
    frame[y1:y2, x1:x2] = cv2.add(colour, behind)
    ys, xs = np.nonzero(alpha > 127)
    if premult[..., 3].min() == 255 or len(xs) == 0:
        return frame, quad_box(quad, width, height)
    return frame, (
        int(x1 + xs.min()),
        int(y1 + ys.min()),
        int(x1 + xs.max() + 1),
        int(y1 + ys.max() + 1),
    )


def quad_box(quad: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """The quad's tight integer box, clipped to the frame and at least one pixel."""
    x1 = min(max(math.floor(float(quad[:, 0].min())), 0), width - 1)
    y1 = min(max(math.floor(float(quad[:, 1].min())), 0), height - 1)
    x2 = min(max(math.ceil(float(quad[:, 0].max())), x1 + 1), width)
    y2 = min(max(math.ceil(float(quad[:, 1].max())), y1 + 1), height)
    return x1, y1, x2, y2


def _shadow(shape: tuple[int, ...], rng: np.random.Generator, s: float) -> np.ndarray:
    """A multiplicative light field: a soft-edged shadow or gradient across the object.

    It is smooth, so it is computed at a quarter of the size and scaled up.
    """
    h, w = shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    offset, softness = rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.6)
    depth = rng.uniform(0, 0.45 * s)
    ys, xs = np.ogrid[0 : h // 4 + 2, 0 : w // 4 + 2]
    along = (xs / (w / 4 + 1)) * math.cos(angle) + (ys / (h / 4 + 1)) * math.sin(angle)
    along = along - along.min()
    t = np.clip((along / max(float(along.max()), 1e-6) - offset) / softness + 0.5, 0, 1)
    field = (1 - depth * t * t * (3 - 2 * t)).astype(np.float32)
    return cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)


def _occlude(
    frame: np.ndarray, bg: np.ndarray, quad: np.ndarray, rng: np.random.Generator, s: float
) -> None:
    """Cover part of the object (in place) with a soft blob of background or flat colour."""
    height, width = frame.shape[:2]
    x, y = quad[:, 0], quad[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    aspect = rng.uniform(0.35, 1.0)
    a = max(1.0, math.sqrt(area * rng.uniform(0.03, 0.15) * min(s, 1.5) / (math.pi * aspect)))
    u, v = rng.uniform(0.1, 0.9, size=2)
    top, bottom = quad[0] + u * (quad[1] - quad[0]), quad[3] + u * (quad[2] - quad[3])
    cx, cy = top + v * (bottom - top)
    r = math.ceil(a) + 4  # the blob and its blurred rim fit in a box of this half-size
    x1, y1 = max(0, round(float(cx)) - r), max(0, round(float(cy)) - r)
    x2, y2 = min(width, round(float(cx)) + r + 1), min(height, round(float(cy)) + r + 1)
    angle = rng.uniform(0, 180)
    use_background = rng.random() < 0.5
    if x2 <= x1 or y2 <= y1:
        return
    mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
    centre = (round(float(cx)) - x1, round(float(cy)) - y1)
    axes = (max(1, round(a)), max(1, round(a * aspect)))
    cv2.ellipse(mask, centre, axes, angle, 0, 360, 255, -1, cv2.LINE_AA)
    soft = cv2.GaussianBlur(mask, (0, 0), 1.5).astype(np.float32)[..., None] / 255
    if use_background:  # another part of the scene in front of the object
        ox, oy = (
            int(rng.integers(0, width - (x2 - x1) + 1)),
            int(rng.integers(0, height - (y2 - y1) + 1)),
        )
        filler = bg[oy : oy + y2 - y1, ox : ox + x2 - x1].astype(np.float32)
    else:  # a finger, a sticker, a glare spot
        filler = rng.uniform(20, 235, size=3).astype(np.float32)
    roi = frame[y1:y2, x1:x2]
    roi[:] = (roi * (1 - soft) + filler * soft).astype(np.uint8)


def _photometric_lut(rng: np.random.Generator, s: float) -> np.ndarray:
    """A per-channel lookup table for exposure, contrast, gamma and colour temperature."""
    x = np.arange(256, dtype=np.float32) / 255
    brightness = rng.uniform(-0.12 * s, 0.12 * s)
    contrast = rng.uniform(1 - 0.25 * s, 1 + 0.2 * s)
    gamma = math.exp(rng.uniform(-0.3 * s, 0.3 * s))
    warmth = rng.uniform(-0.1 * s, 0.1 * s)
    gains = np.array([1 + warmth, 1.0, 1 - warmth], np.float32)
    y = np.clip((x - 0.5) * contrast + 0.5 + brightness, 0, 1) ** gamma
    lut = np.clip(y[:, None] * gains * 255 + 0.5, 0, 255).astype(np.uint8)
    return lut.reshape(1, 256, 3)


def _blur(frame: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """Mild defocus (gaussian) or camera shake (a short line kernel)."""
    if rng.random() < 0.5:
        return cv2.GaussianBlur(frame, (0, 0), rng.uniform(0.4, 0.4 + 0.8 * s))
    length = int(rng.integers(3, 4 + round(5 * s)))
    kernel = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    angle = rng.uniform(0, math.pi)
    dx, dy = c * math.cos(angle), c * math.sin(angle)
    cv2.line(
        kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA
    )
    return cv2.filter2D(frame, -1, kernel / kernel.sum())


def _add_noise(frame: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """Sensor noise: per-pixel gaussian luma noise plus blotchy low-resolution chroma noise.

    Gaussian draws are slow at frame size, so luma noise maps uniform bytes through a
    256-entry table of gaussian quantiles (inverse-CDF sampling), in int16 throughout.
    """
    sigma = s * rng.uniform(1.0, 6.0)
    if sigma <= 0:
        return frame
    height, width = frame.shape[:2]
    normal = NormalDist(0.0, sigma)
    table = np.array([round(normal.inv_cdf((i + 0.5) / 256)) for i in range(256)], np.int16)
    luma = cv2.LUT(rng.integers(0, 256, size=(height, width), dtype=np.uint8), table)
    chroma = rng.standard_normal((height // 4 + 1, width // 4 + 1, 3), dtype=np.float32) * (
        sigma / 2
    )
    chroma = cv2.resize(chroma, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.int16)
    noise = cv2.add(cv2.merge([luma, luma, luma]), chroma)
    return cv2.add(frame, noise, dtype=cv2.CV_8U)


def _jpeg_roundtrip(frame: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as JPEG (OpenCV wants BGR, so swap around the codec)."""
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:  # cannot happen for a valid uint8 image; keep the frame rather than fail
        return frame
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
