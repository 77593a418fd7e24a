"""The aligned comparison of flat things: a drawn card seen in perspective, warped back
along its outline and compared pixel by pixel with its reference and with a reference
that differs by one pip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from server.engine.vision import aligned

W, H = 140, 200


def _card(pips: int) -> np.ndarray:
    """A white card with ``pips`` dark pips in two columns and a corner index."""
    card = np.full((H, W, 3), 240, np.uint8)
    cv2.rectangle(card, (2, 2), (W - 3, H - 3), (30, 30, 30), 2)
    cv2.putText(card, str(pips), (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (20, 20, 20), 2)
    for n in range(pips):
        x = 45 if n % 2 == 0 else 95
        y = 50 + (n // 2) * 35
        cv2.circle(card, (x, y), 11, (25, 25, 25), -1)
    return card


def _photo(card: np.ndarray, corners: np.ndarray, seed: int = 0) -> np.ndarray:
    """``card`` warped onto a noisy brown table at ``corners`` (TL, TR, BR, BL), blurred."""
    rng = np.random.default_rng(seed)
    table = np.full((360, 360, 3), (120, 80, 50), np.uint8)
    table = np.clip(table + rng.normal(0, 10, table.shape), 0, 255).astype(np.uint8)
    src = np.float32([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]])
    warp = cv2.getPerspectiveTransform(src, corners.astype(np.float32))
    seen = cv2.warpPerspective(card, warp, (360, 360))
    mask = cv2.warpPerspective(np.ones((H, W), np.uint8), warp, (360, 360)) > 0
    table[mask] = seen[mask]
    return cv2.GaussianBlur(table, (3, 3), 0)


TILTED = np.float32([[90, 40], [250, 70], [240, 320], [60, 300]])


def test_a_cut_out_is_not_flat_and_a_card_with_rounded_corners_is() -> None:
    disc = np.zeros((100, 100, 4), np.uint8)
    cv2.circle(disc, (50, 50), 45, (200, 50, 50, 255), -1)
    assert aligned.flat_reference(disc) is None
    card = np.dstack([_card(3), np.full((H, W), 255, np.uint8)])
    card[:6, :6, 3] = 0  # a rounded corner
    flat = aligned.flat_reference(card)
    assert flat is not None
    assert flat.box == (0, 0, W, H)
    assert max(flat.size) == aligned.SIDE


def test_the_outline_found_in_a_photo_aligns_the_card_with_its_reference() -> None:
    photo = _photo(_card(7), TILTED)
    quad = aligned.outline(photo)
    assert quad is not None
    ref7, ref8 = aligned.flat_reference(_card(7)), aligned.flat_reference(_card(8))
    assert ref7 is not None and ref8 is not None
    views = [aligned.warped(photo, q, ref7.size) for q in aligned.upright(quad, ref7.size)]
    same, other = aligned.similarity(views, ref7), aligned.similarity(views, ref8)
    assert same is not None and other is not None
    assert same > 0.9
    assert same - other > 0.05  # one pip of eight apart


def test_the_outline_is_compared_the_same_whichever_corner_it_starts_from() -> None:
    ref = aligned.flat_reference(_card(5))
    assert ref is not None
    photo = _photo(_card(5), TILTED)
    scores = []
    for turn in range(4):
        quads = aligned.upright(np.roll(TILTED, turn, axis=0), ref.size)
        assert len(quads) == 1
        scores.append(aligned.similarity([aligned.warped(photo, q, ref.size) for q in quads], ref))
    values = [s for s in scores if s is not None]
    assert len(values) == 4 and min(values) > 0.9
    assert max(values) - min(values) < 1e-6


def test_a_portrait_card_seen_lying_is_turned_a_quarter_either_way() -> None:
    ref = aligned.flat_reference(_card(4))
    assert ref is not None
    lying = np.ascontiguousarray(np.rot90(_card(4)))  # turned a quarter anticlockwise
    h, w = lying.shape[:2]
    corners = np.float32([[40, 60], [40 + w, 70], [35 + w, 70 + h], [30, 60 + h]])
    src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    table = np.full((360, 360, 3), (120, 80, 50), np.uint8)
    warp = cv2.getPerspectiveTransform(src, corners)
    mask = cv2.warpPerspective(np.ones((h, w), np.uint8), warp, (360, 360)) > 0
    table[mask] = cv2.warpPerspective(lying, warp, (360, 360))[mask]
    quads = aligned.upright(corners, ref.size)
    assert len(quads) == 2
    score = aligned.similarity([aligned.warped(table, q, ref.size) for q in quads], ref)
    assert score is not None and score > 0.9


def test_a_degenerate_outline_or_a_shape_mismatch_gives_nothing_to_compare() -> None:
    ref = aligned.flat_reference(_card(2))
    assert ref is not None
    line = np.float32([[0, 0], [10, 10], [20, 20], [30, 30]])
    assert aligned.upright(line, ref.size) == []
    assert aligned.similarity([], ref) is None
    small = aligned.Seen(np.zeros((5, 5), np.float32), np.zeros((5, 5, 3), np.float32))
    assert aligned.similarity([small], ref) is None
    assert aligned.outline(np.full((200, 200, 3), 128, np.uint8)) is None
    assert aligned.bonus(None, 0.5, 0.5) == 0.0
    assert aligned.bonus(0.9, 0.5, 0.7) == pytest.approx(0.1)
    assert aligned.bonus(0.1, 0.5, 0.7) == 0.0  # a low correlation is no evidence either way


def test_a_roughly_found_outline_is_screened_as_warped_and_refined_to_the_pixel() -> None:
    # Corners 5 px off (as a quad finder misses them in a blurred photo): the plain
    # correlation, which only ranks the candidates worth refining, is lower than the
    # one after ECC has aligned the two, and the right card still screens first.
    photo = _photo(_card(7), TILTED)
    rough = TILTED + np.float32([[5, -4], [-5, 3], [4, 5], [-3, -5]])
    ref7, ref8 = aligned.flat_reference(_card(7)), aligned.flat_reference(_card(8))
    assert ref7 is not None and ref8 is not None
    views = [aligned.warped(photo, q, ref7.size) for q in aligned.upright(rough, ref7.size)]
    seen7, seen8 = aligned.screened(views, ref7), aligned.screened(views, ref8)
    assert seen7 is not None and seen8 is not None
    assert seen7[1] > seen8[1]
    assert aligned.refined(seen7[0], ref7) > seen7[1] + 0.02
    assert aligned.refined(seen7[0], ref7) > 0.9
