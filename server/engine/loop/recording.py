"""What happens to a decided object: its observation recorded with what produced it, a
miss (or an audited answer) queued for review with its picture, and a separate
taxonomy's auto-label kept with the picture a promotion makes a reference of.

One home for the server's identification and for ``identify label``, which do the same
to every object they decide.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from server.contract import QueueAction
from server.engine.catalog.making import REGION_GROWTH
from server.engine.catalog.media import Media
from server.engine.catalog.store import QueueEntry, Store
from server.engine.decide.decision import Decision
from server.engine.decide.identifier import Evidence, Identifier
from server.engine.decide.objects import Found
from server.engine.loop.audit import Auditor, AuditReason
from server.engine.loop.outbox import EventSink, queue_event, tell
from server.engine.project.config import DEFAULT_TAXONOMY, Project
from server.engine.vision.images import content_hash, downscale, encode_jpeg
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
class Counts:
    """What was queued, and what the quality gate kept out (by reason)."""

    queued: int = 0
    gate_rejected: Counter[str] = field(default_factory=Counter)


def straightened(found: Found) -> np.ndarray | None:
    """The thing's crop when its corners were known (the straightened picture that was
    identified), else None."""
    return found.region.image if found.quad is not None else None


class Recorder:
    """Records decided objects of one open project (see the module docstring)."""

    def __init__(
        self,
        project: Project,
        embedder_space: str,
        store: Store,
        ident: Identifier,
        media: Media,
        counts: Counts | None = None,
        sink: EventSink | None = None,
    ) -> None:
        self.project, self.space, self.store = project, embedder_space, store
        self.ident, self.media = ident, media
        self.counts = counts or Counts()
        self.sink = sink
        """Where the queue's changes are told once written (they go to the outbox with
        the item either way)."""
        review = project.config.review
        self.auditor = Auditor(review.audit_share, review.audit_margin)

    def found(
        self, image: np.ndarray, found: Found, ev: Evidence, source: str
    ) -> tuple[int | None, int]:
        """Record one object of a picture (not of a live track): a miss, or an audited
        answer, queued when its crop passes the quality gate. Returns its review item id
        (if queued or counted on a waiting one) and its observation id."""
        located = found.detection is None
        audit = self.audit(found.decision)
        queue = (not found.decision.matched or audit is not None) and self.passes_gate(
            image if located else found.region.image
        )
        return self.record(
            image,
            ev,
            found.decision,
            found.region.box,
            source,
            None,
            queue,
            straightened(found),
            audit,
            located,
            None if ev is found.region.evidence else found.region.evidence.vector,
        )

    def audit(self, decision: Decision) -> AuditReason | None:
        """Why an accepted answer is queued too (see ``loop.audit``); None for a miss."""
        if not decision.matched:
            return None
        return self.auditor.pick(decision.margin, decision.margin_threshold)

    def passes_gate(self, crop: np.ndarray, track_gated: bool = False) -> bool:
        """Whether a miss's crop may be queued; rejections are counted (once per
        track for live video)."""
        why_not = gate(crop, self.project.config.review)
        if why_not is not None and not track_gated:
            self.counts.gate_rejected[why_not] += 1
        return why_not is None

    def provenance(self, decision: Decision, located: bool) -> dict[str, object]:
        """What produced a decision: the vector space, the detector, the thresholds, and
        whether it was decided as a whole picture (``located``: thresholds for pictures,
        which a re-application applies again)."""
        detector = self.project.config.detector
        name: str = detector.kind
        if detector.weights is not None:
            name += f":{detector.weights.name}"
        return {
            "embedder": self.space,
            "detector": name,
            "threshold": round(decision.threshold, 4),
            "margin": round(decision.margin_threshold, 4),
            "picture": located,
        }

    def record(
        self,
        image: np.ndarray,
        ev: Evidence,
        decision: Decision,
        bbox: Sequence[int] | None,
        source: str,
        track_id: str | None,
        queue: bool,
        straight: np.ndarray | None = None,
        audit: AuditReason | None = None,
        located: bool = False,
        decided: np.ndarray | None = None,
    ) -> tuple[int | None, int]:
        """Store the observation and, with ``queue``, a review item with its picture:
        the whole picture at most ``REVIEW_MAX_SIDE`` px, with the box the object was
        found in, and the thing's own crop when it was straightened by its corners
        (``straight``: what was identified, and what a label makes a reference of).
        The same picture from the same source while its item still waits is counted on
        that item (``seen``) instead of queued again. ``audit`` says why an accepted
        answer is queued; ``located``: decided as a whole picture; ``decided``: the
        vector it was decided on, when that is not ``ev``'s (a located object's window).

        Returns the review item id (if one was queued or counted) and the observation
        id (0 when counted on a waiting item).
        """
        entry, path = None, ""
        if queue:
            picture, scale = downscale(image, REVIEW_MAX_SIDE)
            data = encode_jpeg(picture, REVIEW_JPEG_QUALITY)
            digest = content_hash(data)
            box = None if bbox is None else [round(v * scale) for v in bbox]
            duplicate = self.store.pending_duplicate(digest, source, box)
            if duplicate is not None:
                with self.store.transaction():
                    self.store.seen_again(duplicate)
                    self._tell("seen_again", duplicate)
                return duplicate, 0
            path = self.media.write("crops", digest, ".jpg", data)
            entry = self._entry(image, decision, bbox, box, source, track_id, straight, audit)
        else:
            digest = content_hash(image.tobytes())
            if decision.matched and self.separate(decision.label):
                # A separate taxonomy's auto-label keeps its picture, to be promoted.
                path = self._label_picture(image, bbox, straight)
        top_label = decision.candidates[0].label if decision.candidates else ""
        with self.store.transaction():
            recorded = self.store.record(
                path=path,
                content_hash=digest,
                width=image.shape[1],
                height=image.shape[0],
                model_id=self.space,
                embedding=ev.vector,
                result=decision.to_json(bbox=bbox),
                kind="crop",
                queue=entry,
                provenance=self.provenance(decision, located),
                taxonomy=self.ident.taxonomy_of.get(top_label, DEFAULT_TAXONOMY),
                decided=decided,
            )
            if recorded.review_id is not None:
                self._tell("added", recorded.review_id)
        if recorded.review_id is not None:
            self.counts.queued += 1
        return recorded.review_id, recorded.observation_id

    def _tell(self, action: QueueAction, item_id: int) -> None:
        tell(self.store, queue_event(self.store, action, item_id), self.sink)

    def separate(self, label: str | None) -> bool:
        """Whether a class belongs to a taxonomy in ``separate`` mode."""
        taxonomy = self.ident.taxonomy_of.get(label or "", DEFAULT_TAXONOMY)
        return self.project.config.taxonomy(taxonomy).mode == "separate"

    def _entry(
        self,
        image: np.ndarray,
        decision: Decision,
        bbox: Sequence[int] | None,
        box: list[int] | None,
        source: str,
        track_id: str | None,
        straight: np.ndarray | None,
        audit: AuditReason | None,
    ) -> QueueEntry:
        """The review row of a queued object (``box``: its box in the stored picture)."""
        top = decision.candidates[0] if decision.candidates else None
        verified = (
            top is not None
            and top.inliers is not None
            and top.inliers >= self.project.config.rerank.min_inliers
        )
        return QueueEntry(
            source=source,
            track_id=track_id,
            taxonomy=self.ident.taxonomy_of.get(top.label if top else "", DEFAULT_TAXONOMY),
            box=box,
            region="whole" if box is None else ("verified" if verified else "doubtful"),
            region_path=(
                self._region_file(image, bbox, box)
                if straight is None
                else self._crop_file(straight)
            ),
            reason=audit,
        )

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
        return self._crop_file(_grown(image, bbox))

    def _crop_file(self, crop: np.ndarray) -> str:
        """Keep a picture as it was identified (at most ``REVIEW_MAX_SIDE``). Returns its
        path."""
        data = encode_jpeg(downscale(crop, REVIEW_MAX_SIDE)[0], REGION_JPEG_QUALITY)
        return self.media.write("crops", content_hash(data), ".jpg", data)

    def _label_picture(
        self, image: np.ndarray, bbox: Sequence[int] | None, straight: np.ndarray | None
    ) -> str:
        """The picture an auto-label keeps (what a promotion makes a reference of): the
        straightened thing, the region it was found in (grown by ``REGION_GROWTH``), or
        the whole picture; at most ``REVIEW_MAX_SIDE``. Returns its path."""
        if straight is not None:
            return self._crop_file(straight)
        return self._crop_file(image if bbox is None else _grown(image, bbox))


def _grown(image: np.ndarray, bbox: Sequence[int]) -> np.ndarray:
    """The box's region grown by ``REGION_GROWTH`` (within the picture)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = to_box(
        (bbox[0] / w, bbox[1] / h, bbox[2] / w, bbox[3] / h), w, h, REGION_GROWTH
    )
    return np.ascontiguousarray(image[y0:y1, x0:x1])
