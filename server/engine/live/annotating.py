"""Annotations while serving: every decision about a queued item stored as an annotation
with the seeds' meaning (see ``loop.annotations``), created, changed and deleted through
the API, with the reference a label makes (or unmakes) committed in the same
transaction, and the statistics they add up to.

Like the review desk, work runs in three steps the server keeps apart: ``plan`` and
``commit`` on the engine thread, ``prepare`` (embedding a new reference) on a worker.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from server import contract
from server.engine.catalog.making import PreparedReference, reference_bytes
from server.engine.catalog.store import AnnotationRow, ReviewItem
from server.engine.errors import ConflictError, IdentifyError
from server.engine.live.catalogue import Catalogue
from server.engine.live.context import Live
from server.engine.loop import report
from server.engine.loop.annotations import (
    AnnotationType,
    Prediction,
    check,
    type_of,
)
from server.engine.loop.outbox import queue_event
from server.engine.loop.recording import stored_size
from server.engine.project.config import DEFAULT_TAXONOMY
from server.engine.project.naming import clean_label

Op = Literal["create", "update"]
_STATUS: dict[str, contract.ReviewStatus] = {
    "confirmed": "confirmed",
    "corrected": "corrected",
    "false_positive": "false_positive",
}
"""The status an annotation leaves its item in."""


@dataclass(frozen=True)
class AnnotationPlan:
    """An annotation to write, checked (see ``AnnotationDesk.plan_create``)."""

    op: Op
    type: AnnotationType | None
    """None: the item is skipped (no annotation: a skip says nothing)."""
    item: ReviewItem
    label: str | None
    """The true label."""
    box: list[int] | None
    author: str
    region: str | None = None
    """``whole``: a reference made by this annotation is of the whole picture."""
    existing: AnnotationRow | None = None
    """The annotation an update changes."""
    make_reference: bool = False

    @property
    def resolves(self) -> bool:
        """Whether the annotation decides its item (a missed object is beside it)."""
        return self.type != "missed"


class AnnotationDesk:
    """Annotations of one open project. See the module docstring."""

    def __init__(self, live: Live, catalogue: Catalogue) -> None:
        self.live = live
        self.catalogue = catalogue

    # --- reading ----------------------------------------------------------------------

    def get(self, annotation_id: int) -> AnnotationRow:
        """One annotation.

        Raises:
            NotFoundError: no such annotation.
        """
        return self.live.store.annotation(annotation_id)

    def find(
        self, filters: Mapping[str, Any], limit: int = 100, before: int | None = None
    ) -> tuple[list[AnnotationRow], int]:
        """Annotations newest first, and how many match (see ``store.annotations``).

        Raises:
            IdentifyError: an unknown filter or type, or a limit out of range.
        """
        if filters.get("type") is not None:
            type_of(filters["type"])
        return self.live.store.annotations(filters, limit, before)

    # --- planning (engine thread, quick) ------------------------------------------------

    def plan_create(
        self,
        item_id: int,
        kind: object,
        label: object = None,
        box: object = None,
        region: str | None = None,
        author: str = "local",
    ) -> AnnotationPlan:
        """Check an annotation of a review item given with its type.

        A ``missed`` object is annotated beside the item (its picture, the box given);
        the other types decide the item, which must be pending, and a label makes a
        reference at once.

        Raises:
            NotFoundError: no such item.
            ConflictError: the item is already decided.
            IdentifyError: a type, label or box that does not fit (see ``loop.check``).
        """
        annotation_type = type_of(kind)
        item = self.live.store.review_item(item_id)
        checked_box = self._box(item, box)
        name = None if label is None else clean_label(label)
        true = check(annotation_type, self.prediction(item), name, checked_box)
        if annotation_type != "missed" and item.status != "pending":
            raise ConflictError(
                f"review item {item_id} is already {item.status}; change its annotation instead"
            )
        if checked_box is None and annotation_type != "missed":
            checked_box = item.box
        return AnnotationPlan(
            "create",
            annotation_type,
            item,
            true,
            checked_box,
            author,
            region,
            make_reference=annotation_type != "missed" and self.unified(true, item),
        )

    def plan_update(self, annotation_id: int, changes: Mapping[str, object]) -> AnnotationPlan:
        """Check a change to an annotation (``type``, ``label``, ``box``; others are
        refused). The reference it made follows: moved to the new label, removed when
        it no longer has one, made when it newly has one.

        Raises:
            NotFoundError: no such annotation, or its item is gone.
            IdentifyError: an unknown field, or a change that does not fit.
        """
        unknown = sorted(set(changes) - {"type", "label", "box"})
        if unknown:
            raise IdentifyError(f"cannot change {unknown[0]!r}; only type, label and box")
        row = self.get(annotation_id)
        if row.review_id is None:
            raise IdentifyError(f"annotation {annotation_id} has no review item to judge by")
        item = self.live.store.review_item(row.review_id)
        old_type = type_of(row.type)
        new_type = type_of(changes["type"]) if "type" in changes else old_type
        if (new_type == "missed") != (old_type == "missed"):
            raise IdentifyError(
                "a missed object and a decided prediction are different things: delete "
                "this annotation and create the other"
            )
        label = changes.get("label", row.true_label)
        name = None if label is None else clean_label(label)
        box = self._box(item, changes["box"]) if "box" in changes else row.box
        true = check(new_type, self.prediction(item), name, box)
        if "box" in changes and row.reference_id is not None and box != row.box:
            raise IdentifyError(
                "this annotation made a reference of its box: delete it and annotate again"
            )
        return AnnotationPlan(
            "update",
            new_type,
            item,
            true,
            box,
            row.author,
            existing=row,
            make_reference=(
                new_type != "missed" and self.unified(true, item) and row.reference_id is None
            ),
        )

    def unified(self, label: str | None, item: ReviewItem) -> bool:
        """Whether a label makes a reference at once: its class's taxonomy (a new
        class's: the item's) is in ``unified`` mode. In ``separate`` mode the label is
        stored and waits to be promoted."""
        if label is None:
            return False
        taxonomy = self.live.ident.taxonomy_of.get(label) or item.taxonomy or DEFAULT_TAXONOMY
        return self.live.project.config.taxonomy(taxonomy).mode == "unified"

    def prediction(self, item: ReviewItem) -> Prediction:
        """What an annotation of ``item`` judges: the answer given when it was queued."""
        store = self.live.store
        label = item.accepted_label
        if label is not None:
            label = store.aliases().get(label, label)

        def known_then(name: str) -> bool:
            return store.label_known_at(name, item.created_at)

        return Prediction(label, known_then)

    # --- preparing (worker) -----------------------------------------------------------

    def prepare(self, plan: AnnotationPlan) -> PreparedReference | None:
        """The reference the annotation makes, ready to commit (worker-safe: reads the
        item's picture, touches neither database nor index)."""
        if not plan.make_reference or plan.label is None:
            return None
        data = reference_bytes(plan.item, plan.box, plan.region)
        return self.catalogue.prepare(data, plan.label)

    # --- committing (engine thread) ---------------------------------------------------

    def commit(self, plan: AnnotationPlan, prepared: PreparedReference | None) -> AnnotationRow:
        """Write the annotation, the item's outcome and the reference in one
        transaction (an update re-checks that nothing changed meanwhile).

        Raises:
            ConflictError: the item was decided, or the annotation changed, meanwhile.
        """
        store = self.live.store
        written: list[int] = []

        def write(ref_id: int | None) -> None:
            # Inside the change's transaction, so what is told of it holds with it.
            if plan.op == "create":
                written.append(self._insert(plan, ref_id))
            else:
                written.append(self._update(plan, ref_id))
            row = store.annotation(written[0])
            self._tell("created" if plan.op == "create" else "updated", row)
            if plan.op == "create" and plan.resolves:
                self._tell_queue("resolved", plan.item.id, row)

        existing = plan.existing
        old_ref = None if existing is None else existing.reference_id
        if prepared is not None:
            self.catalogue.commit(prepared, source="review", also=write)
        elif old_ref is not None and (plan.label is None or plan.type == "false_positive"):
            self.catalogue.remove(old_ref, also=lambda: write(None))
        elif old_ref is not None and existing is not None and plan.label != existing.true_label:
            assert plan.label is not None
            self.catalogue.relabel(old_ref, plan.label, also=lambda: write(old_ref))
        else:
            with store.transaction():
                write(old_ref)
        return store.annotation(written[0])

    def delete(self, annotation_id: int) -> None:
        """Remove an annotation. One that decided a review item puts the item back in
        the queue, and the reference its label made is removed with it.

        Raises:
            NotFoundError: no such annotation.
        """
        store = self.live.store
        row = self.get(annotation_id)

        def write() -> None:
            store.delete_annotation(annotation_id)
            self._tell("deleted", row)
            if row.review_id is not None and row.type != "missed":
                store.mark_reopened(row.review_id)
                self._tell_queue("reopened", row.review_id)

        if row.reference_id is not None and store.references_by_id([row.reference_id]):
            self.catalogue.remove(row.reference_id, also=write)
        else:
            with store.transaction():
                write()

    def _insert(self, plan: AnnotationPlan, ref_id: int | None) -> int:
        store, item = self.live.store, plan.item
        assert plan.type is not None
        if plan.resolves:
            store.mark_resolved(item.id, plan.type, plan.label, ref_id)
        width, height = self._picture_size(item)
        return store.insert_annotation(
            {
                "type": plan.type,
                "image_id": item.image_id,
                "observation_id": item.observation_id,
                "review_id": item.id,
                "predicted_label": None if plan.type == "missed" else item.accepted_label,
                "candidate_label": None if plan.type == "missed" else item.label,
                "true_label": plan.label,
                "taxonomy": item.taxonomy,
                "box": plan.box,
                "image_width": width,
                "image_height": height,
                "score": None if plan.type == "missed" else item.score,
                "margin": None if plan.type == "missed" else item.margin,
                "reference_id": ref_id if plan.resolves else None,
                "author": plan.author,
                "provenance": report.provenance(store.observation_provenance(item.observation_id)),
            }
        )

    def _update(self, plan: AnnotationPlan, ref_id: int | None) -> int:
        store, row = self.live.store, plan.existing
        assert row is not None and plan.type is not None
        current = store.annotation(row.id)
        # Times are kept to the second: two changes within one would look the same by
        # time alone, so what a change touches is compared too.
        seen = (row.updated_at, row.type, row.true_label, row.box, row.reference_id)
        now = (
            current.updated_at,
            current.type,
            current.true_label,
            current.box,
            current.reference_id,
        )
        if now != seen:
            raise ConflictError(f"annotation {row.id} changed meanwhile; read it again")
        store.update_annotation(
            row.id,
            {"type": plan.type, "true_label": plan.label, "box": plan.box, "reference_id": ref_id},
        )
        if plan.resolves:
            store.restatus_item(plan.item.id, plan.type, plan.label, ref_id)
        return row.id

    def _box(self, item: ReviewItem, box: object) -> list[int] | None:
        """A box from a request, in the item's stored picture.

        Raises:
            IdentifyError: not four whole numbers, empty, or outside the picture.
        """
        if box is None:
            return None
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in box)
        ):
            raise IdentifyError("'box' must be [x0, y0, x1, y1] in whole pixels")
        width, height = self._picture_size(item)
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise IdentifyError(
                f"box {box} is not inside the item's picture ({width} x {height}) or is empty"
            )
        return [x0, y0, x1, y1]

    def _picture_size(self, item: ReviewItem) -> tuple[int, int]:
        width, height = self.live.store.image_size(item.image_id)
        return stored_size(width, height)

    def _tell(self, action: Literal["created", "updated", "deleted"], row: AnnotationRow) -> None:
        self.live.tell(
            {
                "type": "annotation",
                "action": action,
                "id": row.id,
                "annotation_type": type_of(row.type),
                "label": row.true_label,
                "item_id": row.review_id,
                "at": time.time(),
            }
        )

    def _tell_queue(
        self,
        action: Literal["resolved", "reopened"],
        item_id: int,
        row: AnnotationRow | None = None,
    ) -> None:
        if row is not None and row.type != "missed":
            event = queue_event(self.live.store, action, item_id, _STATUS[row.type], row.true_label)
        else:
            event = queue_event(self.live.store, action, item_id)
        self.live.tell(event)

    def stats(
        self, label: str | None = None, depth: int | None = None, now: datetime | None = None
    ) -> contract.Stats:
        """Counts by type and label, rates per day and week, the levels to watch and
        drift (see ``loop.report``); ``label`` keeps a class or a level of its path."""
        return report.stats(
            self.live.store,
            label,
            depth,
            now or datetime.now(UTC),
            self.predicted(),
            self.live.ident.thresholds.default,
        )

    def predicted(self) -> float | None:
        """``verify``'s predicted open-set accuracy (None before verify)."""
        calibration = self.live.project.config.calibration
        return None if calibration is None else calibration.predicted_open_set_accuracy
