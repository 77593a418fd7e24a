"""Live tracks: which frames continue an appearance, and how scores are smoothed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from server.engine.decide.decision import Candidate
from server.engine.decide.tracking import Sighted, Tracker
from server.engine.project.config import ReviewConfig
from server.engine.vision.locate import iou
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


def one(tracker: Tracker, source: str, bbox: list[float] | None, vector: np.ndarray, now: float):  # type: ignore[no-untyped-def]
    (track,) = tracker.assign_frame(source, [Sighted(bbox, vector)], now)
    return track


def test_similar_whole_frames_continue_a_track_and_different_ones_start_another() -> None:
    tracker = Tracker(ReviewConfig(track_similarity=0.9))
    a = one(tracker, "cam", None, unit(1, 0, 0), now=0.0)
    again = one(tracker, "cam", None, unit(1, 0.1, 0), now=0.1)
    other = one(tracker, "cam", None, unit(0, 1, 0), now=0.2)
    assert again is a and other is not a
    assert one(tracker, "door", None, unit(1, 0, 0), now=0.3) is not a
    # Two whole frames of one picture never share a track.
    x, y = tracker.assign_frame("cam", [Sighted(None, unit(1, 0, 0))] * 2, now=0.4)
    assert x is a and y is not a


def test_boxes_continue_by_overlap_and_a_track_expires(tmp_path: Path) -> None:
    tracker = Tracker(ReviewConfig(track_iou=0.3, track_timeout_s=2.0), tmp_path)
    a = one(tracker, "cam", [0, 0, 100, 100], unit(1, 0), now=0.0)
    assert one(tracker, "cam", [10, 10, 110, 110], unit(0, 1), now=1.0) is a
    assert one(tracker, "cam", [10, 10, 110, 110], unit(0, 1), now=3.5) is not a
    b, c = tracker.assign_frame(
        "cam", [Sighted([0, 0, 50, 50], unit(1, 0)), Sighted([0, 0, 50, 50], unit(1, 0))], 3.6
    )
    assert b is not c  # two objects of one frame never share a track
    assert one(tracker, "cam", [300, 300, 350, 350], unit(1, 0), now=3.7) not in (a, b, c)


def test_two_things_that_move_and_cross_keep_their_tracks(tmp_path: Path) -> None:
    # Two cards slide towards each other, 12 px a frame, and pass: the tracker predicts
    # where each goes (ByteTrack's Kalman filter) and assigns the frame's boxes at once,
    # so neither takes the other's track where their boxes overlap.
    tracker = Tracker(ReviewConfig(track_iou=0.3, track_timeout_s=5.0), tmp_path)
    ids: list[tuple[str, str]] = []
    for step in range(16):
        left = [40 + 12 * step, 100, 120 + 12 * step, 220]
        right = [400 - 12 * step, 110, 480 - 12 * step, 230]
        a, b = tracker.assign_frame(
            "cam", [Sighted(left, unit(1, 0)), Sighted(right, unit(0, 1))], step * 0.1
        )
        ids.append((a.id, b.id))
    assert len(set(ids)) == 1, ids
    assert ids[0][0] != ids[0][1]
    assert tracker.active == 2
    tracker.forget("cam")
    assert tracker.active == 0


def test_smoothing_keeps_one_odd_frame_from_flipping_the_answer() -> None:
    tracker = Tracker(ReviewConfig())
    track = one(tracker, "cam", None, unit(1, 0), now=0.0)
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


def test_a_thing_missed_for_a_frame_keeps_its_track(tmp_path: Path) -> None:
    # ByteTrack ends a track seen on one frame only at its first miss; the live track
    # lasts its timeout whatever ByteTrack keeps.
    tracker = Tracker(ReviewConfig(track_iou=0.3, track_timeout_s=2.0), tmp_path)
    a, b = [0, 0, 100, 140], [300, 100, 400, 240]
    first = tracker.assign_frame("cam", [Sighted(a, unit(1, 0))], 0.0)[0]
    later = tracker.assign_frame("cam", [Sighted(a, unit(1, 0)), Sighted(b, unit(0, 1))], 0.03)
    gap = tracker.assign_frame("cam", [Sighted(a, unit(1, 0))], 0.06)  # b missed once
    back = tracker.assign_frame("cam", [Sighted(a, unit(1, 0)), Sighted(b, unit(0, 1))], 0.09)
    assert later[0] is gap[0] is back[0] is first
    assert back[1] is later[1]
    # A source that sees nothing for longer than the timeout holds no tracks.
    assert tracker.active == 2
    tracker.assign_frame("cam", [], 5.0)
    assert tracker.active == 0
