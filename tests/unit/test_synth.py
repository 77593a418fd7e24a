"""Synthetic camera views: deterministic, geometrically consistent, robust to odd input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from server.engine.errors import ImageRejected
from server.engine.vision import backdrops, synth


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    return backdrops.fallback_background(np.random.default_rng(7), (640, 480))


def _disc_cutout(size: int = 200) -> np.ndarray:
    """A real photo cut to a disc: the box corners are transparent."""
    rgb = cv2.resize(data.chelsea(), (size, size), interpolation=cv2.INTER_AREA)
    alpha = np.zeros((size, size), np.uint8)
    cv2.circle(alpha, (size // 2, size // 2), size // 2 - 1, 255, -1)
    return np.dstack([rgb, alpha])


def test_same_seed_gives_the_same_view(background: np.ndarray) -> None:
    a = synth.camera_view(data.astronaut(), background, np.random.default_rng(3))
    b = synth.camera_view(data.astronaut(), background, np.random.default_rng(3))
    c = synth.camera_view(data.astronaut(), background, np.random.default_rng(4))
    assert np.array_equal(a.frame, b.frame) and a.bbox == b.bbox
    assert np.array_equal(a.quad, b.quad)
    assert not np.array_equal(a.frame, c.frame)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("strength", [0.0, 1.0, 1.5])
def test_bbox_is_inside_the_frame_and_matches_the_quad(
    background: np.ndarray, seed: int, strength: float
) -> None:
    view = synth.camera_view(
        data.chelsea(), background, np.random.default_rng(seed), strength=strength
    )
    assert view.frame.shape == (480, 640, 3) and view.frame.dtype == np.uint8
    x1, y1, x2, y2 = view.bbox
    assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
    assert view.quad.shape == (4, 2) and view.quad.dtype == np.float32
    lo = np.clip(np.floor(view.quad.min(axis=0)), 0, [640, 480])
    hi = np.clip(np.ceil(view.quad.max(axis=0)), 0, [640, 480])
    # An opaque reference fills its quad: the box is the quad's clipped box.
    assert (x1, y1) == tuple(lo) and (x2, y2) == tuple(hi)
    # The object is mostly inside the frame.
    assert (x2 - x1) * (y2 - y1) >= 0.5 * float(
        np.prod(view.quad.max(axis=0) - view.quad.min(axis=0))
    )


def test_strength_zero_keeps_the_reference_recognisable(background: np.ndarray) -> None:
    reference = data.chelsea()
    view = synth.camera_view(reference, background, np.random.default_rng(0), strength=0.0)
    x1, y1, x2, y2 = view.bbox
    crop = view.frame[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].astype(np.float32)
    expected = cv2.resize(reference, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)[2:-2, 2:-2]
    assert np.abs(crop - expected).mean() < 12


def test_rgba_reference_composites_only_the_opaque_part() -> None:
    grey = np.full((480, 640, 3), (40, 90, 160), np.uint8)
    view = synth.camera_view(_disc_cutout(), grey, np.random.default_rng(1), strength=0.0)
    x1, y1, x2, y2 = view.bbox
    # The disc's box corners are outside the alpha mask: they show the background.
    corner = view.frame[y1 + 2, x1 + 2].astype(int)
    assert np.abs(corner - [40, 90, 160]).max() <= 6
    centre = view.frame[(y1 + y2) // 2, (x1 + x2) // 2].astype(int)
    assert np.abs(centre - [40, 90, 160]).max() > 30
    # A cut-out's box hugs the opaque disc, which is as wide as it is tall.
    assert abs((x2 - x1) - (y2 - y1)) <= 3


def test_transparent_edges_do_not_bleed_dark(background: np.ndarray) -> None:
    white = np.full((480, 640, 3), 255, np.uint8)
    cutout = _disc_cutout()
    cutout[..., :3] = 255  # a white disc...
    cutout[cutout[..., 3] == 0, :3] = 0  # ...whose transparent pixels carry black colour
    view = synth.camera_view(cutout, white, np.random.default_rng(2), strength=0.0)
    assert view.frame.min() >= 240


@pytest.mark.parametrize(
    "shape",
    [(20, 300, 3), (300, 20, 3), (1, 1, 3), (2, 500, 4), (3000, 4000, 3), (64, 64), (50, 80, 2)],
)
def test_odd_reference_shapes_do_not_crash(background: np.ndarray, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(5)
    reference = rng.integers(0, 256, size=shape, dtype=np.uint8)
    for strength in (0.0, 1.0, 1.5):
        view = synth.camera_view(reference, background, rng, strength=strength)
        x1, y1, x2, y2 = view.bbox
        assert view.frame.shape == (480, 640, 3)
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
        assert synth.crop_object(view, rng).size > 0


def test_fully_transparent_reference_still_gives_a_box(background: np.ndarray) -> None:
    view = synth.camera_view(np.zeros((40, 60, 4), np.uint8), background, np.random.default_rng(0))
    x1, y1, x2, y2 = view.bbox
    assert x2 > x1 and y2 > y1


def test_empty_reference_is_rejected(background: np.ndarray) -> None:
    with pytest.raises(ImageRejected):
        synth.camera_view(np.zeros((0, 10, 3), np.uint8), background, np.random.default_rng(0))


def test_other_frame_sizes_and_backgrounds_are_covered() -> None:
    portrait_background = data.coffee()[:, :200]  # smaller than the frame, portrait
    view = synth.camera_view(
        data.chelsea(), portrait_background, np.random.default_rng(0), size=(320, 240)
    )
    assert view.frame.shape == (240, 320, 3)


def test_crop_object_contains_the_object(background: np.ndarray) -> None:
    view = synth.camera_view(data.astronaut(), background, np.random.default_rng(9))
    x1, y1, x2, y2 = view.bbox
    plain = synth.crop_object(view)
    assert plain.ndim == 3 and plain.shape[2] == 3 and plain.size > 0
    assert plain.shape[0] >= min(y2 - y1, 480) - 1 and plain.shape[1] >= min(x2 - x1, 640) - 1
    for seed in range(10):
        jittered = synth.crop_object(view, np.random.default_rng(seed))
        assert jittered.size > 0
        assert 0.5 * (x2 - x1) <= jittered.shape[1] <= 1.4 * (x2 - x1) + 2


def test_crop_object_is_deterministic(background: np.ndarray) -> None:
    view = synth.camera_view(data.astronaut(), background, np.random.default_rng(9))
    a = synth.crop_object(view, np.random.default_rng(1))
    b = synth.crop_object(view, np.random.default_rng(1))
    assert np.array_equal(a, b)


def test_fallback_background_is_textured_and_deterministic() -> None:
    a = backdrops.fallback_background(np.random.default_rng(1), (320, 200))
    b = backdrops.fallback_background(np.random.default_rng(1), (320, 200))
    assert a.shape == (200, 320, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert a.std() > 10  # not a flat colour


def test_load_backgrounds_skips_unreadable_files(tmp_path: Path) -> None:
    good = tmp_path / "photo.jpg"
    cv2.imwrite(str(good), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    portrait = tmp_path / "portrait.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(data.astronaut()[:, :200], cv2.COLOR_RGB2BGR))
    placeholder = tmp_path / "640x480.jpg"
    placeholder.write_text("2560x1600.jpg")  # what a symlink becomes when copied badly
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    missing = tmp_path / "missing.png"
    images = backdrops.load_backgrounds(
        [good, placeholder, truncated, missing, portrait], (640, 480)
    )
    assert len(images) == 2
    assert all(im.shape == (480, 640, 3) and im.dtype == np.uint8 for im in images)
    # Colour order is RGB: the coffee photo's cup is reddish-brown, not blue.
    assert images[0][..., 0].mean() > images[0][..., 2].mean()
