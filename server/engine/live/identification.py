"""Identification while serving: a picture (or a live frame) decided, smoothed over its
track, recorded, and queued for review when it is a miss worth a person's time."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from server import contract
from server.engine.decide.decision import Decision, decide
from server.engine.decide.identifier import Evidence
from server.engine.decide.objects import Found, Sighting, sight
from server.engine.decide.objects import decide as decide_objects
from server.engine.decide.tracking import Sighted, Track, Tracker
from server.engine.live.context import Live
from server.engine.loop.audit import AuditReason
from server.engine.loop.labelling import file_result, label_picture
from server.engine.loop.recording import Counts, Recorder, straightened
from server.engine.vision.images import MAX_WORK_SIDE, WORK_MIN_SIDE, decode_image, flatten_alpha


@dataclass
class LiveStats(Counts):
    """Counters since the service opened (shown by health)."""

    identified: int = 0
    started: float = field(default_factory=time.monotonic)


Prepared = Sighting
"""A decoded picture with the evidence of each object it may hold, ready for decisions
(see ``decide.objects``)."""


@dataclass(frozen=True)
class ObjectResult:
    """One object in a frame: the decision and what happened to it."""

    decision: Decision
    bbox: Sequence[int] | None = None
    track_id: str | None = None
    review_id: int | None = None
    quad: np.ndarray | None = None
    picture: tuple[int, int] = (0, 0)
    """(width, height) of the picture ``bbox`` and ``quad`` are in."""
    fell_back: bool = False
    """The project's detector found nothing, so the picture was located instead."""
    observation_id: int | None = None
    """Its recorded observation (None: not recorded, or a live frame)."""

    def to_json(self) -> contract.DetectedObject:
        """The object shape of ``identify match --json``, plus track and review ids."""
        decided = self.decision.to_json(bbox=self.bbox, quad=self.quad)
        out: contract.DetectedObject = {
            **decided,
            "track_id": self.track_id,
            "review_id": self.review_id,
        }
        if self.fell_back:
            out["detector_found_nothing"] = True
        return out


class Identification:
    """Identifies pictures and frames of one open project, and keeps its counters."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.tracker = Tracker(live.project.config.review, live.project.data_dir)
        self.stats = LiveStats()
        self.recorder = Recorder(
            live.project,
            live.embedder.spec.space_id,
            live.store,
            live.ident,
            live.media,
            self.stats,
            live.emit,
        )

    def warm_up(self) -> None:
        """Run the model once so the first real request does not pay for lazy set-up."""
        self.live.ident.regions(np.full((480, 640, 3), 127, np.uint8))
        if self.live.project.config.detector.kind in ("quad", "yolo"):  # tracked by ByteTrack
            self.tracker.warm_up()

    def prepare(self, image: np.ndarray | bytes, name: str = "upload") -> Prepared:
        """Decode an image and compute its evidence (embedding, local features).

        The one step that may run on several threads at once (it reads only the model
        and the project settings); everything else runs on the engine thread.

        Raises:
            ImageRejected: bytes that are not a usable image.
        """
        if isinstance(image, bytes):
            image = decode_image(image, name, min_side=WORK_MIN_SIDE, max_side=MAX_WORK_SIDE)
        return sight(self.live.ident, self.live.detector, flatten_alpha(image))

    def identify_prepared(
        self, prepared: Prepared, *, source: str, live: bool = False, record: bool = True
    ) -> list[ObjectResult]:
        """Decide about each object of a prepared picture (see ``decide.objects``).

        A miss (unknown, or a match below the margin threshold) that passes the quality
        gate is queued for review with the picture and its box. ``live`` frames are
        smoothed per track and queued once per track; other images are recorded and
        queued one by one.
        """
        founds = decide_objects(self.live.ident, prepared)
        # What is recorded of a located object is the whole picture (with the box in
        # the result): for a miss the box is only where the picture looked most like
        # something known. A detected thing is recorded as its own crop.
        evidence = [
            prepared.regions[0].evidence if f.detection is None else f.region.evidence
            for f in founds
        ]
        tracks = self._tracks(founds, evidence, source) if live else [None] * len(founds)
        objects = []
        for found, ev, track in zip(founds, evidence, tracks, strict=True):
            if track is not None:
                obj = self._live_object(prepared.image, found, ev, source, track)
                objects.append(replace(obj, fell_back=prepared.fell_back))
                continue
            review_id = observation_id = None
            if record:
                review_id, observation_id = self.recorder.found(prepared.image, found, ev, source)
            size = (prepared.image.shape[1], prepared.image.shape[0])
            objects.append(
                ObjectResult(
                    found.decision,
                    found.region.box,
                    None,
                    review_id,
                    found.quad,
                    size,
                    prepared.fell_back,
                    observation_id or None,
                )
            )
        self.stats.identified += 1
        self.live.emit(
            {
                "type": "identification",
                "source": source,
                "objects": [o.to_json() for o in objects],
                "at": time.time(),
            }
        )
        return objects

    def label(self, prepared: Prepared, digest: str, path: str) -> contract.LabelledFile:
        """Auto-label one prepared file (see ``loop.labelling``): every object decided
        and recorded, misses queued, the file marked labelled; a file labelled before
        (by ``digest``, its content) is not decided again."""
        store = self.live.store
        if store.labelled([digest]):
            return file_result(path, store, digest, already=True)
        label_picture(self.live.ident, self.recorder, prepared, digest, path)
        self.stats.identified += 1
        return file_result(path, store, digest, already=False)

    def _tracks(
        self, founds: Sequence[Found], evidence: Sequence[Evidence], source: str
    ) -> list[Track]:
        """The live track of each object of a frame. A detected thing's track follows
        its box; without a detector the track follows the whole frame (a located box
        moves with the grid it snaps to)."""
        sighted = [
            Sighted(None if f.detection is None else f.region.box, ev.vector)
            for f, ev in zip(founds, evidence, strict=True)
        ]
        return self.tracker.assign_frame(source, sighted, self.live.clock())

    def _live_object(
        self, image: np.ndarray, found: Found, ev: Evidence, source: str, track: Track
    ) -> ObjectResult:
        """The object's candidates smoothed over its track."""
        review = self.live.project.config.review
        located = found.detection is None
        bbox = found.region.box
        track.update(self.live.ident.candidates(found.region.evidence), review.smoothing)
        ident = self.live.ident
        decision = ident.with_rarity(
            decide(track.smoothed(), ident.thresholds, ident.taxonomy_of, picture=located)
        )
        review_id = None
        if track.frames >= review.min_track_frames and not track.recorded:
            # One observation per appearance, decided on the smoothed scores; a miss
            # waits for a frame that passes the quality gate.
            crop = image if located else found.region.image
            if decision.matched:
                # An accepted answer is recorded at once; it is queued too when audited
                # and its crop is worth a look (drawn once per appearance, so the audit
                # share counts answers, not frames).
                audit = self.recorder.audit(decision)
                queue = audit is not None and self.recorder.passes_gate(
                    crop, track_gated=track.gated
                )
                track.recorded = True
                review_id = self._record_live(
                    image, found, ev, decision, source, track, queue, audit
                )
            elif self.recorder.passes_gate(crop, track_gated=track.gated):
                track.recorded = True
                review_id = self._record_live(image, found, ev, decision, source, track, True)
            else:
                track.gated = True
        size = (image.shape[1], image.shape[0])
        return ObjectResult(decision, bbox, track.id, review_id, found.quad, size)

    def _record_live(
        self,
        image: np.ndarray,
        found: Found,
        ev: Evidence,
        decision: Decision,
        source: str,
        track: Track,
        queue: bool,
        audit: AuditReason | None = None,
    ) -> int | None:
        """Record one appearance of a live track (see ``Recorder.record``)."""
        decided = found.region.evidence
        review_id, _ = self.recorder.record(
            image,
            ev,
            decision,
            found.region.box,
            source,
            track.id,
            queue,
            straightened(found),
            audit,
            found.detection is None,
            None if decided is ev else decided.vector,
        )
        return review_id
