"""Identification while serving: a picture (or a live frame) decided, smoothed over its
track, recorded, and queued for review when it is a miss worth a person's time."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from server import contract
from server.engine.catalog.making import REGION_GROWTH
from server.engine.catalog.store import QueueEntry
from server.engine.decide.decision import Decision, decide
from server.engine.decide.identifier import Evidence
from server.engine.decide.objects import Found, Sighting, sight
from server.engine.decide.objects import decide as decide_objects
from server.engine.decide.tracking import Sighted, Track, Tracker
from server.engine.live.context import Live
from server.engine.loop.audit import Auditor, AuditReason
from server.engine.project.config import DEFAULT_TAXONOMY
from server.engine.vision.images import (
    MAX_WORK_SIDE,
    WORK_MIN_SIDE,
    content_hash,
    decode_image,
    downscale,
    encode_jpeg,
    flatten_alpha,
)
from server.engine.vision.locate import to_box
from server.engine.vision.quality import gate

REVIEW_MAX_SIDE = 384
"""Longest side of a review item's stored picture: enough to see what it is and to make
a reference of (the model looks at 224-256 px)."""
REVIEW_JPEG_QUALITY = 75
"""The stored picture is for a person to see what was there (and the context of its
box); a region kept for a reference is stored at ``REGION_JPEG_QUALITY``."""
REGION_JPEG_QUALITY = 80
REGION_MIN_SIDE = 224
"""A box the stored picture holds at fewer pixels than this (on its longer side, the
model's input size) is also kept as it came, for the reference a label makes of it."""


def stored_size(width: int, height: int) -> tuple[int, int]:
    """The size of a review item's stored picture, from the picture's as it came (the
    arithmetic of ``downscale`` to ``REVIEW_MAX_SIDE``)."""
    if max(width, height) <= REVIEW_MAX_SIDE:
        return width, height
    scale = REVIEW_MAX_SIDE / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass
class LiveStats:
    """Counters since the service opened (shown by health)."""

    identified: int = 0
    queued: int = 0
    gate_rejected: Counter[str] = field(default_factory=Counter)
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
        review = live.project.config.review
        self.auditor = Auditor(review.audit_share, review.audit_margin)
        self._added: set[int] = set()
        """Review items the picture being decided added (not counted on a waiting one)."""

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
        self._added = set()
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
            located = found.detection is None
            if track is not None:
                obj = self._live_object(prepared.image, found, ev, source, track)
                objects.append(replace(obj, fell_back=prepared.fell_back))
                continue
            review_id = None
            if record:
                audit = self._audit(found.decision)
                queue = (not found.decision.matched or audit is not None) and self._passes_gate(
                    prepared.image if located else found.region.image
                )
                review_id = self._record(
                    prepared.image,
                    ev,
                    found.decision,
                    found.region.box,
                    source,
                    None,
                    queue,
                    _straightened(found),
                    audit,
                )
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
        for obj in objects:
            if obj.review_id is not None:
                # A new item, or the same picture again on a waiting one (its count).
                new = obj.review_id in self._added
                action: contract.QueueAction = "added" if new else "seen_again"
                self.live.emit(
                    {
                        "type": "queue",
                        "action": action,
                        "item_id": obj.review_id,
                        "pending": self.live.store.pending_count(),
                        "at": time.time(),
                    }
                )
        return objects

    def _region_file(
        self, image: np.ndarray, bbox: Sequence[int] | None, stored_box: Sequence[int] | None
    ) -> str | None:
        """When the stored picture holds the object's box at fewer than
        ``REGION_MIN_SIDE`` pixels but the picture as it came held it at more, keep the
        region (grown by ``REGION_GROWTH``) at the resolution it came in (at most
        ``REVIEW_MAX_SIDE``): a label makes its reference of that. Returns its path."""
        if bbox is None or stored_box is None:
            return None
        stored_side = max(stored_box[2] - stored_box[0], stored_box[3] - stored_box[1])
        side = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
        if stored_side >= REGION_MIN_SIDE or side <= stored_side:
            return None
        h, w = image.shape[:2]
        x0, y0, x1, y1 = to_box(
            (bbox[0] / w, bbox[1] / h, bbox[2] / w, bbox[3] / h), w, h, REGION_GROWTH
        )
        region, _ = downscale(np.ascontiguousarray(image[y0:y1, x0:x1]), REVIEW_MAX_SIDE)
        data = encode_jpeg(region, REGION_JPEG_QUALITY)
        return self.live.media.write("crops", content_hash(data), ".jpg", data)

    def _crop_file(self, crop: np.ndarray) -> str:
        """Keep a straightened thing as it was identified (at most ``REVIEW_MAX_SIDE``).
        Returns its path."""
        data = encode_jpeg(downscale(crop, REVIEW_MAX_SIDE)[0], REGION_JPEG_QUALITY)
        return self.live.media.write("crops", content_hash(data), ".jpg", data)

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
            straightened = _straightened(found)
            if decision.matched:
                # An accepted answer is recorded at once; it is queued too when audited
                # and its crop is worth a look (drawn once per appearance, so the audit
                # share counts answers, not frames).
                audit = self._audit(decision)
                queue = audit is not None and self._passes_gate(crop, track_gated=track.gated)
                track.recorded = True
                review_id = self._record(
                    image, ev, decision, bbox, source, track.id, queue, straightened, audit
                )
            elif self._passes_gate(crop, track_gated=track.gated):
                track.recorded = True
                review_id = self._record(
                    image, ev, decision, bbox, source, track.id, True, straightened
                )
            else:
                track.gated = True
        size = (image.shape[1], image.shape[0])
        return ObjectResult(decision, bbox, track.id, review_id, found.quad, size)

    def _audit(self, decision: Decision) -> AuditReason | None:
        """Why an accepted answer is queued too (see ``loop.audit``); None for a miss."""
        if not decision.matched:
            return None
        return self.auditor.pick(decision.margin, decision.margin_threshold)

    def _provenance(self, decision: Decision) -> dict[str, object]:
        """What produced a decision: the vector space, the detector, the thresholds."""
        detector = self.live.project.config.detector
        name: str = detector.kind
        if detector.weights is not None:
            name += f":{detector.weights.name}"
        return {
            "embedder": self.live.embedder.spec.space_id,
            "detector": name,
            "threshold": round(decision.threshold, 4),
            "margin": round(decision.margin_threshold, 4),
        }

    def _separate(self, label: str | None) -> bool:
        """Whether a class belongs to a taxonomy in ``separate`` mode."""
        taxonomy = self.live.ident.taxonomy_of.get(label or "", DEFAULT_TAXONOMY)
        return self.live.project.config.taxonomy(taxonomy).mode == "separate"

    def _label_picture(
        self, image: np.ndarray, bbox: Sequence[int] | None, straightened: np.ndarray | None
    ) -> str:
        """The picture an auto-label keeps (what a promotion makes a reference of): the
        straightened thing, the region it was found in (grown by ``REGION_GROWTH``), or
        the whole picture; at most ``REVIEW_MAX_SIDE``. Returns its path."""
        if straightened is not None:
            return self._crop_file(straightened)
        if bbox is not None:
            h, w = image.shape[:2]
            x0, y0, x1, y1 = to_box(
                (bbox[0] / w, bbox[1] / h, bbox[2] / w, bbox[3] / h), w, h, REGION_GROWTH
            )
            return self._crop_file(np.ascontiguousarray(image[y0:y1, x0:x1]))
        return self._crop_file(image)

    def _passes_gate(self, crop: np.ndarray, track_gated: bool = False) -> bool:
        """Whether a miss's crop may be queued; rejections are counted (once per
        track for live video)."""
        why_not = gate(crop, self.live.project.config.review)
        if why_not is not None and not track_gated:
            self.stats.gate_rejected[why_not] += 1
        return why_not is None

    def _record(
        self,
        image: np.ndarray,
        ev: Evidence,
        decision: Decision,
        bbox: Sequence[int] | None,
        source: str,
        track_id: str | None,
        queue: bool,
        straightened: np.ndarray | None = None,
        audit: AuditReason | None = None,
    ) -> int | None:
        """Store the observation and, with ``queue``, a review item with its picture:
        the whole picture at most ``REVIEW_MAX_SIDE`` px, with the box the object was
        found in, and the thing's own crop when it was straightened by its corners
        (``straightened``: what was identified, and what a label makes a reference of).
        The same picture from the same source while its item still waits is counted on
        that item (``seen``) instead of queued again. ``audit`` says why an accepted
        answer is queued.

        Returns the review item id, if one was queued (or counted).
        """
        entry, path = None, ""
        if queue:
            picture, scale = downscale(image, REVIEW_MAX_SIDE)
            data = encode_jpeg(picture, REVIEW_JPEG_QUALITY)
            digest = content_hash(data)
            box = None if bbox is None else [round(v * scale) for v in bbox]
            duplicate = self.live.store.pending_duplicate(digest, source, box)
            if duplicate is not None:
                self.live.store.seen_again(duplicate)
                return duplicate
            path = self.live.media.write("crops", digest, ".jpg", data)
            top = decision.candidates[0] if decision.candidates else None
            verified = (
                top is not None
                and top.inliers is not None
                and top.inliers >= self.live.project.config.rerank.min_inliers
            )
            entry = QueueEntry(
                source=source,
                track_id=track_id,
                taxonomy=self.live.ident.taxonomy_of.get(
                    top.label if top else "", DEFAULT_TAXONOMY
                ),
                box=box,
                region="whole" if box is None else ("verified" if verified else "doubtful"),
                region_path=(
                    self._region_file(image, bbox, box)
                    if straightened is None
                    else self._crop_file(straightened)
                ),
                reason=audit,
            )
        else:
            digest = content_hash(image.tobytes())
            if decision.matched and self._separate(decision.label):
                # A separate taxonomy's auto-label keeps its picture, to be promoted.
                path = self._label_picture(image, bbox, straightened)
        top_label = decision.candidates[0].label if decision.candidates else ""
        recorded = self.live.store.record(
            path=path,
            content_hash=digest,
            width=image.shape[1],
            height=image.shape[0],
            model_id=self.live.embedder.spec.space_id,
            embedding=ev.vector,
            result=decision.to_json(bbox=bbox),
            kind="crop",
            queue=entry,
            provenance=self._provenance(decision),
            taxonomy=self.live.ident.taxonomy_of.get(top_label, DEFAULT_TAXONOMY),
        )
        if recorded.review_id is not None:
            self.stats.queued += 1
            self._added.add(recorded.review_id)
        return recorded.review_id


def _straightened(found: Found) -> np.ndarray | None:
    """The thing's crop when its corners were known (the straightened picture that was
    identified), else None."""
    return found.region.image if found.quad is not None else None
