"""Identities smoothed over live frames, one track per object appearance.

A live source sends many frames of the same thing. Each object is matched to a track of
its source (by box overlap when it has a box, else by the similarity of its embedding
to the track's last one); the track keeps running per-class scores, so one blurred
frame does not flip the answer, and the review queue gets one entry per appearance,
not one per frame.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from server.engine.decide.decision import Candidate
from server.engine.project.config import ReviewConfig
from server.engine.vision.locate import iou


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

    def __init__(self, cfg: ReviewConfig) -> None:
        self.cfg = cfg
        self._tracks: dict[str, list[Track]] = {}
        self._ids = itertools.count(1)

    def assign(
        self,
        source: str,
        bbox: Sequence[float] | None,
        vector: np.ndarray,
        now: float,
        taken: set[str],
    ) -> Track:
        """The track this object continues, or a new one.

        ``taken`` holds the tracks already given to other objects of the same frame.
        """
        alive = [
            t for t in self._tracks.get(source, []) if now - t.last_seen <= self.cfg.track_timeout_s
        ]
        best: Track | None = None
        best_score = 0.0
        for t in alive:
            if t.id in taken:
                continue
            if bbox is not None and t.bbox is not None:
                score = iou(bbox, t.bbox)
                ok = score >= self.cfg.track_iou
            else:
                score = float(np.dot(vector, t.vector))
                ok = score >= self.cfg.track_similarity
            if ok and score > best_score:
                best, best_score = t, score
        if best is None:
            best = Track(id=f"{source}#{next(self._ids)}", bbox=bbox, vector=vector, last_seen=now)
            alive.append(best)
        best.bbox, best.vector, best.last_seen = bbox, vector, now
        self._tracks[source] = alive
        return best

    def forget(self, source: str) -> None:
        """Drop a source's tracks (it disconnected)."""
        self._tracks.pop(source, None)

    @property
    def active(self) -> int:
        """Tracks currently held."""
        return sum(len(v) for v in self._tracks.values())
