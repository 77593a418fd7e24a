"""The review desk: what a person decides about a queued item, and what follows from it
(a reference made of its picture, an undo), plus the queue's pictures and statistics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from server import contract
from server.engine.catalog.store import ReviewItem
from server.engine.errors import ConflictError, IdentifyError, NotFoundError
from server.engine.live.catalogue import Catalogue, PreparedReference
from server.engine.live.context import Live
from server.engine.live.identification import REGION_GROWTH
from server.engine.project.naming import clean_label
from server.engine.vision.images import decode_image, encode_jpeg
from server.engine.vision.locate import to_box

ACTIONS = {
    "confirm": "confirmed",
    "correct": "corrected",
    "false_positive": "false_positive",
    "skip": "skipped",
}
"""What a reviewer may do, and the status each action leaves."""
DECIDED: tuple[contract.FinalStatus, ...] = ("confirmed", "corrected", "false_positive")
"""The statuses that say something about the prediction (a skip says nothing)."""


@dataclass(frozen=True)
class Resolution:
    """A reviewer's decision, checked (see ``ReviewDesk.plan``)."""

    item: ReviewItem
    status: str
    """The item's final status."""
    label: str | None
    """The class it becomes a reference of; None for false positives and skips."""
    region: str | None


class ReviewDesk:
    """Decisions about queued items, in three steps the server runs apart: ``plan`` and
    ``commit`` on the engine thread, ``prepare`` (the heavy, read-only one) on a worker."""

    def __init__(self, live: Live, catalogue: Catalogue) -> None:
        self.live = live
        self.catalogue = catalogue

    def items(
        self,
        status: str = "pending",
        taxonomy: str | None = None,
        reason: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> tuple[list[ReviewItem], int]:
        """Items newest first, and how many match in all (``before``: a smaller id).

        Raises:
            IdentifyError: an unknown status or reason, or a limit out of range.
        """
        return self.live.store.review_items(status, taxonomy, reason, limit, before)

    def item(self, item_id: int) -> ReviewItem:
        """One item.

        Raises:
            NotFoundError: no such item.
        """
        return self.live.store.review_item(item_id)

    def plan(
        self,
        item_id: int,
        action: str,
        label: object = None,
        candidate: int | None = None,
        region: str | None = None,
    ) -> Resolution:
        """Check a reviewer's decision about a queued item and work out its label
        (engine thread; quick).

        ``confirm`` accepts the top candidate (or candidate number ``candidate``, from
        1); ``correct`` gives the true ``label`` (a new name makes a new class); both
        make the item's picture a reference at once: the region the object was found in
        (``region="whole"``: the whole picture). ``false_positive`` says none of the
        candidates is right and it is not worth a class; ``skip`` closes it unlabelled.

        Raises:
            NotFoundError: no such item.
            ConflictError: already resolved (nothing is labelled twice).
            IdentifyError: an unknown action, a missing label or candidate.
        """
        if action not in ACTIONS:
            raise IdentifyError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        if region not in (None, "box", "whole"):
            raise IdentifyError(
                "region must be 'box' (where the object was found) or 'whole' (the whole picture)"
            )
        store = self.live.store
        item = store.review_item(item_id)
        if item.status != "pending":
            raise ConflictError(f"review item {item_id} is already {item.status}")
        final: str | None = None
        if action == "confirm":
            number = 1 if candidate is None else candidate
            if not isinstance(number, int) or not 1 <= number <= len(item.candidates):
                raise IdentifyError(
                    f"item {item_id} has {len(item.candidates)} candidates; pick 1 to "
                    f"{len(item.candidates)}"
                )
            # A candidate's class may have been renamed or merged since it was queued.
            queued = item.candidates[number - 1]["label"]
            final = store.aliases().get(queued, queued)
        elif action == "correct":
            if label is None:
                raise IdentifyError("correct needs the right label")
            final = clean_label(label)
        return Resolution(item, ACTIONS[action], final, region)

    def prepare(self, plan: Resolution) -> PreparedReference | None:
        """The reference a labelling decision makes, ready to commit (worker-safe: reads
        the item's picture file, touches neither database nor index)."""
        if plan.label is None:
            return None
        return self.catalogue.prepare(self._reference_bytes(plan.item, plan.region), plan.label)

    def commit(self, plan: Resolution, prepared: PreparedReference | None) -> ReviewItem:
        """Apply a decision (engine thread): the item must still be pending, then its
        reference is committed and the item resolved.

        Raises:
            ConflictError: resolved meanwhile by someone else (nothing is written).
        """
        store, item_id = self.live.store, plan.item.id
        if prepared is None:
            resolved = store.resolve_item(item_id, plan.status, plan.label, None)
        else:
            # The reference and the label commit together: a crash between them can
            # leave neither an orphan reference nor a labelled item without one.
            self.catalogue.commit(
                prepared,
                source="review",
                also=lambda ref_id: store.mark_resolved(item_id, plan.status, plan.label, ref_id),
            )
            resolved = store.review_item(item_id)
        event: contract.QueueEvent = {
            **self._queue_event("resolved", item_id),
            "status": resolved.status,
            "label": plan.label,
        }
        self.live.emit(event)
        return resolved

    def reopen(self, item_id: int) -> ReviewItem:
        """Undo a reviewer's decision: the item is pending again, and the reference its
        label made (if any) is removed.

        Raises:
            NotFoundError: no such item.
            ConflictError: it is still pending.
        """
        item = self.live.store.review_item(item_id)
        if item.status == "pending":
            raise ConflictError(f"review item {item_id} is still pending")
        if item.reference_id is not None:
            try:
                self.catalogue.remove(item.reference_id)
            except NotFoundError:
                pass  # removed meanwhile by hand: nothing left to undo there
        reopened = self.live.store.reopen_item(item_id)
        self.live.emit(self._queue_event("reopened", item_id))
        return reopened

    def stats(self) -> contract.Stats:
        """Queue size, decisions per day, decision rates and auto-label coverage."""
        store = self.live.store
        counts = store.review_counts()
        decided = sum(counts[s] for s in DECIDED)
        observed, accepted = store.observation_counts()
        return {
            "queue": counts,
            "per_day": store.resolved_per_day(),
            "rates": {
                "confirmed": counts["confirmed"] / decided if decided else None,
                "corrected": counts["corrected"] / decided if decided else None,
                "false_positive": counts["false_positive"] / decided if decided else None,
            },
            "observations": observed,
            "auto_labelled": accepted,
            "coverage": (accepted / observed) if observed else None,
        }

    def picture(self, item_id: int) -> Path:
        """The stored picture of a review item.

        Raises:
            NotFoundError: no such item, or its picture is gone.
        """
        item = self.live.store.review_item(item_id)
        if not item.crop_path:
            raise NotFoundError(
                f"the picture of review item {item_id} is no longer kept "
                f"(review.keep_days: {self.live.project.config.review.keep_days})"
            )
        path = Path(item.crop_path)
        if not path.is_file():
            raise NotFoundError(f"the picture of review item {item_id} is missing")
        return path

    def picture_with_box(self, item_id: int) -> bytes:
        """A review item's picture with the box the object was found in drawn on it
        (JPEG; the picture as it is when the whole picture won).

        Raises:
            NotFoundError: no such item, or its picture is gone.
        """
        path = self.picture(item_id)
        item = self.live.store.review_item(item_id)
        data = path.read_bytes()
        if item.box is None:
            return data
        picture = decode_image(data, f"review item {item_id}").copy()
        x0, y0, x1, y1 = item.box
        colour = (255, 200, 0) if item.region == "doubtful" else (0, 220, 0)
        width = max(1, round(max(picture.shape[:2]) / 160))
        cv2.rectangle(picture, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), colour, width)
        return encode_jpeg(picture, 90)

    def _reference_bytes(self, item: ReviewItem, region: str | None) -> bytes:
        """What a label makes a reference of: the region the object was found in, grown
        by ``REGION_GROWTH`` (the default whenever the item has a box), or with
        ``region="whole"`` the whole stored picture."""
        if item.box is not None and region != "whole" and item.region_path:
            try:
                return Path(item.region_path).read_bytes()  # the region as it came
            except OSError:
                pass  # gone: cut it from the stored picture instead
        try:
            data = Path(item.crop_path).read_bytes()
        except OSError:
            raise NotFoundError(f"the picture of review item {item.id} is missing") from None
        if item.box is None or region == "whole":
            return data
        picture = decode_image(data, f"review item {item.id}")
        h, w = picture.shape[:2]
        x0, y0, x1, y1 = item.box
        gx0, gy0, gx1, gy1 = to_box((x0 / w, y0 / h, x1 / w, y1 / h), w, h, REGION_GROWTH)
        if gx1 - gx0 < 2 or gy1 - gy0 < 2:
            return data
        return encode_jpeg(np.ascontiguousarray(picture[gy0:gy1, gx0:gx1]), 95)

    def _queue_event(
        self, action: Literal["resolved", "reopened"], item_id: int
    ) -> contract.QueueEvent:
        pending = self.live.store.pending_count()
        return {
            "type": "queue",
            "action": action,
            "item_id": item_id,
            "pending": pending,
            "at": time.time(),
        }
