"""Live tracks: which frames continue an appearance, and how scores are smoothed."""

from __future__ import annotations

import cv2
import numpy as np

from server.engine.decide.decision import Candidate
from server.engine.decide.tracking import Tracker, iou
from server.engine.project.config import ReviewConfig
from server.engine.vision.quality import gate, sharpness


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, np.float32)
    return v / np.linalg.norm(v)


def cand(label: str, score: float) -> Candidate:
    return Candidate(label=label, score=score, reference_id=hash(label) % 100, cosine=score)


def test_iou_of_boxes() -> None:
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert abs(iou([0, 0, 10, 10], [5, 0, 15, 10]) - 1 / 3) < 1e-9


def test_similar_whole_frames_continue_a_track_and_different_ones_start_another() -> None:
    tracker = Tracker(ReviewConfig(track_similarity=0.9))
    a = tracker.assign("cam", None, unit(1, 0, 0), now=0.0, taken=set())
    again = tracker.assign("cam", None, unit(1, 0.1, 0), now=0.1, taken=set())
    other = tracker.assign("cam", None, unit(0, 1, 0), now=0.2, taken=set())
    assert again is a and other is not a
    assert tracker.assign("door", None, unit(1, 0, 0), now=0.3, taken=set()) is not a


def test_boxes_continue_by_overlap_and_a_track_expires() -> None:
    tracker = Tracker(ReviewConfig(track_iou=0.3, track_timeout_s=2.0))
    a = tracker.assign("cam", [0, 0, 100, 100], unit(1, 0), now=0.0, taken=set())
    assert tracker.assign("cam", [10, 10, 110, 110], unit(0, 1), now=1.0, taken=set()) is a
    assert tracker.assign("cam", [10, 10, 110, 110], unit(0, 1), now=3.5, taken=set()) is not a
    b = tracker.assign("cam", [0, 0, 50, 50], unit(1, 0), now=3.6, taken=set())
    c = tracker.assign("cam", [0, 0, 50, 50], unit(1, 0), now=3.6, taken={b.id})
    assert b is not c  # two objects of one frame never share a track


def test_smoothing_keeps_one_odd_frame_from_flipping_the_answer() -> None:
    tracker = Tracker(ReviewConfig())
    track = tracker.assign("cam", None, unit(1, 0), now=0.0, taken=set())
    for _ in range(3):
        track.update([cand("Kiwi", 0.9), cand("Lime", 0.5)], alpha=0.5)
    track.update([cand("Lime", 0.75), cand("Pear", 0.4)], alpha=0.5)  # one blurred frame
    ranked = track.smoothed()
    assert [c.label for c in ranked[:2]] == ["Kiwi", "Lime"]  # 0.65 against 0.625
    # Kiwi was absent from the last frame: it decays towards that frame's floor (0.4).
    assert abs(ranked[0].score - (0.5 * 0.4 + 0.5 * 0.9)) < 1e-6
    assert track.frames == 4


def test_quality_gate_rejects_small_and_blurred_crops() -> None:
    from server.engine.vision.images import load_image
    from tests.conftest import DEMO_QUERIES

    sharp = cv2.resize(
        load_image(DEMO_QUERIES / "known-brazil.jpg"), (120, 120), interpolation=cv2.INTER_AREA
    )
    cfg = ReviewConfig(min_crop_side=48, min_sharpness=8.0)
    assert gate(sharp, cfg) is None
    noise = np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    assert gate(noise, cfg) == "noise"
    assert gate(sharp[:40], cfg) == "too_small"
    assert gate(np.full((120, 120, 3), 80, np.uint8), cfg) == "blurry"
    assert sharpness(sharp) > 100
    assert gate(np.full((120, 120, 3), 80, np.uint8), ReviewConfig(min_sharpness=0)) is None
