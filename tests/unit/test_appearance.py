"""Colour layouts: where the colours are, robust to light and loose boxes, not to order."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from server.engine.vision import appearance, backdrops, synth
from server.engine.vision.appearance import Layout, layout, query_layouts, similarity
from server.engine.vision.images import load_image
from tests.conftest import DEMO_REFS


@pytest.fixture(scope="module")
def india() -> np.ndarray:
    return load_image(DEMO_REFS / "India.png")


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    return backdrops.fallback_background(np.random.default_rng(11), (640, 480))


def test_a_photographed_flag_matches_its_layout_better_than_the_same_colours_reordered(
    india: np.ndarray, background: np.ndarray
) -> None:
    # Upside down, India's flag has the same colours in the other order: a global
    # embedding pools both to nearly one vector; the layout tells them apart.
    upside_down = np.ascontiguousarray(india[::-1])
    ref, twin = layout(india), layout(upside_down)
    crops = synth.camera_crops(india, [background], np.random.default_rng(3), 8, strength=1.0)
    for crop in crops:
        qs = query_layouts(crop)
        own, other = similarity(qs, ref), similarity(qs, twin)
        assert own is not None and other is not None
        assert own > other + 0.1, (own, other)


def test_exposure_contrast_and_colour_temperature_barely_move_it(india: np.ndarray) -> None:
    ref = layout(india)
    others = [
        similarity(query_layouts(load_image(path)), ref)
        for path in sorted(DEMO_REFS.glob("*.png"))
        if path.stem != "India"
    ]
    rng = np.random.default_rng(5)
    for _ in range(10):
        lit = cv2.LUT(india, synth._photometric_lut(rng, 1.0))  # verify's lighting range
        sim = similarity(query_layouts(lit), ref)
        assert sim is not None and sim > 0.8 and sim > max(o or 0.0 for o in others) + 0.3


def test_what_lies_under_a_transparent_background_does_not_count() -> None:
    rgba = np.zeros((120, 120, 4), np.uint8)
    rgba[30:90, 30:90] = (200, 30, 30, 255)  # an opaque red square, the thing
    noisy = rgba.copy()
    noisy[:, :, :3][rgba[:, :, 3] == 0] = np.random.default_rng(0).integers(
        0, 256, size=(int((rgba[:, :, 3] == 0).sum()), 3), dtype=np.uint8
    )
    a, b = layout(rgba), layout(noisy)
    np.testing.assert_allclose(a.lab, b.lab, atol=1.0)
    np.testing.assert_allclose(a.cover, b.cover)
    assert a.cover.min() == 0.0 and a.cover.max() == 1.0


def test_a_loose_box_is_compared_at_its_best_alignment(india: np.ndarray) -> None:
    h, w = india.shape[:2]
    loose = cv2.copyMakeBorder(
        india, h // 8, h // 8, w // 8, w // 8, cv2.BORDER_CONSTANT, value=(40, 40, 160)
    )  # a blue wall around the flag
    ref = layout(india)
    as_is = similarity([layout(loose)], ref)
    best = similarity(query_layouts(loose), ref)
    assert as_is is not None and best is not None and best > as_is + 0.05


def test_layouts_survive_storage_and_reject_foreign_bytes(india: np.ndarray) -> None:
    lay = layout(np.dstack([india, np.full(india.shape[:2], 255, np.uint8)]))
    back = Layout.from_bytes(lay.to_bytes())
    np.testing.assert_allclose(back.lab, lay.lab, atol=0.5)
    np.testing.assert_allclose(back.cover, lay.cover, atol=1 / 255)
    assert similarity(query_layouts(india), back) == pytest.approx(
        similarity(query_layouts(india), lay), abs=0.01
    )
    with pytest.raises(ValueError, match="layout"):
        Layout.from_bytes(b"\x00" * 10)


def test_nothing_to_compare_gives_no_similarity_and_no_score_change(india: np.ndarray) -> None:
    invisible = np.zeros((50, 50, 4), np.uint8)
    assert similarity(query_layouts(india), layout(invisible)) is None
    assert similarity([], layout(india)) is None
    assert appearance.appearance_bonus(None, 0.3, 0.5) == 0.0
    assert appearance.appearance_bonus(0.9, 0.3, 0.5) == pytest.approx(0.12)
    assert appearance.appearance_bonus(0.2, 0.3, 0.5) == pytest.approx(-0.09)


def test_grey_and_tiny_images_have_a_layout() -> None:
    grey = np.full((3, 2), 128, np.uint8)
    lay = layout(grey)
    assert lay.lab.shape == (appearance.GRID, appearance.GRID, 3)
    assert len(query_layouts(np.zeros((1, 1, 3), np.uint8))) == len(appearance.SHRINKS)


def test_find_puts_a_box_on_a_photographed_textureless_thing() -> None:
    from server.engine.vision.backdrops import BACKGROUNDS_DIR
    from server.engine.vision.locate import iou

    backgrounds = backdrops.load_backgrounds(sorted(BACKGROUNDS_DIR.glob("*.jpg"))[:4], (640, 480))
    for name in ("Sweden", "Japan", "Canada"):
        ref = load_image(DEMO_REFS / f"{name}.png", keep_alpha=True)
        rng = np.random.default_rng(1)
        overlaps = []
        for i in range(8):
            view = synth.camera_view(ref, backgrounds[i % 4], rng, strength=0.5)
            hit = appearance.find(view.frame, layout(ref))
            assert hit is not None
            sim, (x0, y0, x1, y1) = hit
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480 and 0.0 <= sim <= 1.0
            overlaps.append(iou((x0, y0, x1, y1), view.bbox))
        # Measured 0.49-0.90 (median 0.7); a window of the feature map's grid gets ~0.5.
        assert np.median(overlaps) >= 0.6, (name, overlaps)


def test_find_has_nothing_to_say_about_nothing(india: np.ndarray) -> None:
    assert appearance.find(india, layout(np.zeros((20, 20, 4), np.uint8))) is None
    tiny = appearance.find(np.zeros((3, 3, 3), np.uint8), layout(india))
    assert tiny is None or tiny[1][2] <= 3
    assert layout(india).aspect == pytest.approx(india.shape[1] / india.shape[0])
