"""Identities smoothed over live frames, one track per object appearance.

A live source sends many frames of the same thing. Each object is matched to a track of
its source; the track keeps running per-class scores, so one blurred frame does not
flip the answer, and the review queue gets one entry per appearance, not one per frame.

Detected things (with a box) are tracked by Ultralytics' ByteTrack (Zhang et al. 2022:
a Kalman filter predicts each track's box, and the boxes of a frame are assigned to
the predictions at once by IoU, with ``lap``), so a moving card keeps its track and two
things that cross do not swap. Things without a box (located, or the whole picture)
continue the track whose last embedding is most like their own. Either way a track
ends after ``review.track_timeout_s`` seconds unseen (live sources drop frames when
the pipeline is busy, so time, not a count of frames, says when a thing has gone).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from server.engine.decide.decision import Candidate
from server.engine.project.config import ReviewConfig
from server.engine.vision.detectors.yolo import offline_ultralytics
from server.engine.vision.locate import iou

BYTETRACK_BUFFER = 30
"""Processed frames ByteTrack keeps a lost track for (its own default); the timeout in
seconds applies as well."""


@dataclass(frozen=True)
class Sighted:
    """One object of a live frame, as the tracker sees it."""

    bbox: Sequence[float] | None
    """Its box (x0, y0, x1, y1) when a detector found it; None when located or whole."""
    vector: np.ndarray


@dataclass
class Track:
    """One object's appearance on one source."""

    id: str
    bbox: Sequence[float] | None
    vector: np.ndarray
    last_seen: float
    frames: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    latest: dict[str, Candidate] = field(default_factory=dict)
    recorded: bool = False
    """This appearance was stored as an observation."""
    gated: bool = False
    """A miss of this track failed the quality gate (counted once)."""

    def update(self, candidates: Sequence[Candidate], alpha: float) -> None:
        """Fold one frame's ranking into the running scores (exponential average).

        A class absent from this frame's top-k scored at most the lowest score shown, so
        it decays towards that rather than towards zero.
        """
        floor = min((c.score for c in candidates), default=0.0)
        fresh = {c.label: c for c in candidates}
        for label in set(self.scores) | set(fresh):
            new = fresh[label].score if label in fresh else floor
            old = self.scores.get(label, new)
            self.scores[label] = alpha * new + (1 - alpha) * old
        self.latest.update(fresh)
        self.frames += 1

    def smoothed(self) -> list[Candidate]:
        """The running ranking, best first."""
        out = [
            replace(self.latest[label], score=score, homography=None)
            for label, score in self.scores.items()
            if label in self.latest
        ]
        return sorted(out, key=lambda c: -c.score)


class Tracker:
    """Tracks of every live source."""

    def __init__(self, cfg: ReviewConfig, data_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self._tracks: dict[str, list[Track]] = {}
        """Tracks of things without a box, per source."""
        self._boxed: dict[str, dict[int, Track]] = {}
        """Tracks of detected things, per source, by ByteTrack's track id."""
        self._byte: dict[str, Any] = {}
        self._ids = itertools.count(1)

    def assign_frame(self, source: str, objects: Sequence[Sighted], now: float) -> list[Track]:
        """The track each object of one frame continues, or a new one (in order); two
        objects of one frame never share a track."""
        out: list[Track | None] = [None] * len(objects)
        boxed = [i for i, o in enumerate(objects) if o.bbox is not None]
        if boxed or source in self._byte:  # an empty frame ages the tracks too
            for i, track in zip(
                boxed, self._by_box(source, [objects[i] for i in boxed], now), strict=True
            ):
                out[i] = track
        taken = {t.id for t in out if t is not None}
        for i, obj in enumerate(objects):
            if obj.bbox is None:
                track = self._by_embedding(source, obj.vector, now, taken)
                taken.add(track.id)
                out[i] = track
        return [t for t in out if t is not None]

    def _new(self, source: str, obj: Sighted, now: float) -> Track:
        return Track(
            id=f"{source}#{next(self._ids)}", bbox=obj.bbox, vector=obj.vector, last_seen=now
        )

    def _by_box(self, source: str, objects: Sequence[Sighted], now: float) -> list[Track]:
        """Detected things matched by ByteTrack to the tracks of their source.

        ByteTrack ends a track it has not confirmed (one seen on a single frame) at its
        first miss, and drops one of two overlapping tracks at the end of a frame, so
        a detection it gives a new id (or none) first continues the unclaimed live
        track whose last box it overlaps most (``review.track_iou``): a track lasts
        ``review.track_timeout_s`` seconds unseen, whatever ByteTrack keeps."""
        byte = self._byte.get(source)
        if byte is None:
            byte = self._byte[source] = self._bytetrack()
        ids = _assigned(byte, objects)
        tracks = self._boxed.setdefault(source, {})
        timeout = self.cfg.track_timeout_s
        for byte_id in [k for k, t in tracks.items() if now - t.last_seen > timeout]:
            del tracks[byte_id]
        out: list[Track | None] = [tracks.get(i) if i is not None else None for i in ids]
        for n, track in enumerate(out):  # one object per track: the first keeps it
            if track is not None and any(t is track for t in out[:n]):
                out[n] = None
        claimed = {t.id for t in out if t is not None}
        for n, obj in enumerate(objects):
            if out[n] is not None:
                continue
            track = self._relinked(tracks.values(), obj, claimed) or self._new(source, obj, now)
            claimed.add(track.id)
            out[n] = track
            known_as = ids[n]
            if known_as is not None:
                tracks[known_as] = track
        for obj, track in zip(objects, out, strict=True):
            assert track is not None
            track.bbox, track.vector, track.last_seen = obj.bbox, obj.vector, now
        return [t for t in out if t is not None]

    def _relinked(self, alive: Iterable[Track], obj: Sighted, claimed: set[str]) -> Track | None:
        """The live track not yet claimed in this frame whose last box overlaps
        ``obj``'s most, by at least ``review.track_iou``."""
        best, best_iou = None, self.cfg.track_iou
        for track in alive:
            if track.id in claimed or track.bbox is None or obj.bbox is None:
                continue
            overlap = iou(obj.bbox, track.bbox)
            if overlap >= best_iou:
                best, best_iou = track, overlap
        return best

    def warm_up(self) -> None:
        """Import ByteTrack now (seconds, once), not on the first detected thing."""
        self._bytetrack()

    def _bytetrack(self) -> Any:
        """A ByteTrack for one source: every detection given is tracked (the detector
        has already applied its confidence), and a box continues a track when it
        overlaps the track's predicted box by ``review.track_iou``."""
        offline_ultralytics(self.data_dir or Path.cwd())
        from ultralytics.trackers.byte_tracker import BYTETracker

        return BYTETracker(
            SimpleNamespace(
                track_high_thresh=0.0,
                track_low_thresh=0.0,
                new_track_thresh=0.0,
                track_buffer=BYTETRACK_BUFFER,
                match_thresh=1.0 - self.cfg.track_iou,
                fuse_score=False,
            )
        )

    def _by_embedding(self, source: str, vector: np.ndarray, now: float, taken: set[str]) -> Track:
        """The track without a box whose last embedding is most like ``vector`` (by
        ``review.track_similarity``), or a new one; ``taken`` holds the tracks already
        given to other objects of the same frame."""
        alive = [
            t for t in self._tracks.get(source, []) if now - t.last_seen <= self.cfg.track_timeout_s
        ]
        best: Track | None = None
        best_score = self.cfg.track_similarity
        for t in alive:
            score = float(np.dot(vector, t.vector))
            if t.id not in taken and score >= best_score:
                best, best_score = t, score
        if best is None:
            best = self._new(source, Sighted(None, vector), now)
            alive.append(best)
        best.vector, best.last_seen = vector, now
        self._tracks[source] = alive
        return best

    def forget(self, source: str) -> None:
        """Drop a source's tracks (it disconnected)."""
        self._tracks.pop(source, None)
        self._boxed.pop(source, None)
        self._byte.pop(source, None)

    @property
    def active(self) -> int:
        """Tracks currently held (one track may be known to ByteTrack by two ids)."""
        return sum(len(v) for v in self._tracks.values()) + sum(
            len({t.id for t in v.values()}) for v in self._boxed.values()
        )


class _Boxes:
    """Detections as ByteTrack reads them (centre x, y, width, height; confidence, which
    its thresholds at 0 ignore; class), indexable by a mask."""

    def __init__(self, xywh: np.ndarray, conf: np.ndarray) -> None:
        self.xywh, self.conf, self.cls = xywh, conf, np.zeros(len(conf), np.float32)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, mask: Any) -> _Boxes:
        return _Boxes(self.xywh[mask], self.conf[mask])


def _assigned(byte: Any, objects: Sequence[Sighted]) -> list[int | None]:
    """ByteTrack's track id for each detected object after one update (None for a box
    it cannot track: one without area)."""
    boxes = np.array([o.bbox for o in objects], np.float32).reshape(-1, 4)
    xywh = np.column_stack(
        [
            (boxes[:, 0] + boxes[:, 2]) / 2,
            (boxes[:, 1] + boxes[:, 3]) / 2,
            boxes[:, 2:] - boxes[:, :2],
        ]
    )
    byte.update(_Boxes(xywh, np.ones(len(objects), np.float32)))  # all tracked alike
    ids: list[int | None] = [None] * len(objects)
    for strack in byte.tracked_stracks:  # new ones too, not yet confirmed
        if strack.frame_id == byte.frame_id and 0 <= int(strack.idx) < len(objects):
            ids[int(strack.idx)] = int(strack.track_id)
    return ids
