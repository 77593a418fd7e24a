"""The review desk: what a person decides about a queued item (an annotation, and the
reference a label makes of its picture), an undo, and the queue's pictures."""

from __future__ import annotations

from pathlib import Path

import cv2

from server.engine.catalog.making import PreparedReference
from server.engine.catalog.store import ReviewItem
from server.engine.errors import ConflictError, IdentifyError, NotFoundError
from server.engine.live.annotating import AnnotationDesk, AnnotationPlan
from server.engine.live.context import Live
from server.engine.loop.annotations import derive
from server.engine.loop.outbox import queue_event
from server.engine.project.naming import clean_label
from server.engine.vision.images import decode_image, encode_jpeg

ACTIONS = ("confirm", "correct", "unknown", "false_positive", "skip")
"""What a reviewer may do (see ``ReviewDesk.plan``)."""


class ReviewDesk:
    """Decisions about queued items, in three steps the server runs apart: ``plan`` and
    ``commit`` on the engine thread, ``prepare`` (the heavy, read-only one) on a worker."""

    def __init__(self, live: Live, annotations: AnnotationDesk) -> None:
        self.live = live
        self.annotations = annotations

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
        author: str = "local",
    ) -> AnnotationPlan:
        """Check a reviewer's decision about a queued item and work out its annotation
        (engine thread; quick).

        ``confirm`` takes the top candidate (or candidate number ``candidate``, from 1);
        ``correct`` gives the true ``label`` (a new name makes a new class); both make
        the item's picture a reference at once: the region the object was found in
        (``region="whole"``: the whole picture). ``unknown`` says it is none of the known
        classes; ``false_positive`` that nothing of interest is there; ``skip`` closes it
        unjudged. Which annotation type a decision is follows from the answer that was
        given (see ``loop.annotations.derive``).

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
        if action == "skip":
            return AnnotationPlan("create", None, item, None, None, author)
        kind = derive(self.annotations.prediction(item), final, action == "false_positive")
        return AnnotationPlan(
            "create",
            kind,
            item,
            final,
            item.box,
            author,
            region,
            make_reference=self.annotations.unified(final, item),
        )

    def prepare(self, plan: AnnotationPlan) -> PreparedReference | None:
        """The reference a labelling decision makes, ready to commit (worker-safe)."""
        return self.annotations.prepare(plan)

    def commit(self, plan: AnnotationPlan, prepared: PreparedReference | None) -> ReviewItem:
        """Apply a decision (engine thread): the item must still be pending, then its
        annotation and reference are committed and the item resolved together.

        Raises:
            ConflictError: resolved meanwhile by someone else (nothing is written).
        """
        store, item_id = self.live.store, plan.item.id
        if plan.type is not None:
            self.annotations.commit(plan, prepared)  # tells the events stream too
            return store.review_item(item_id)
        with store.transaction():
            resolved = store.resolve_item(item_id, "skipped", None, None)
            self.live.tell(queue_event(store, "resolved", item_id, resolved.status, None))
        return resolved

    def reopen(self, item_id: int) -> ReviewItem:
        """Undo a reviewer's decision: its annotation is deleted, the item is pending
        again, and the reference its label made (if any) is removed.

        Raises:
            NotFoundError: no such item.
            ConflictError: it is still pending.
        """
        store = self.live.store
        item = store.review_item(item_id)
        if item.status == "pending":
            raise ConflictError(f"review item {item_id} is still pending")
        annotation = store.item_annotation(item_id)
        if annotation is not None:
            self.annotations.delete(annotation.id)
        else:
            with store.transaction():
                store.reopen_item(item_id)
                self.live.tell(queue_event(store, "reopened", item_id))
        return store.review_item(item_id)

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
