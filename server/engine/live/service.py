"""A project open for live use: identification with tracking and a review queue, and
reference and threshold changes that apply to the very next query.

This is what ``identify serve`` runs, with no HTTP in it: a facade over the parts in
this package (identification, the catalogue, the review desk, the threshold book,
health). It is not thread-safe on purpose: the server calls it from one engine thread
only (the one that owns the model, the index and the database connection), so changes
and queries never interleave; only ``prepare`` and the ``prepare_*`` halves may run on
workers. Every change is committed to the database first; the index is derived data,
saved by ``save`` and brought back in step from the database on the next ``open``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from server import contract
from server.engine.catalog.making import PreparedReference
from server.engine.catalog.media import Collected
from server.engine.catalog.store import (
    AnnotationRow,
    AutoLabel,
    Reapplication,
    ReferenceRow,
    ReviewItem,
)
from server.engine.live.annotating import AnnotationDesk, AnnotationPlan
from server.engine.live.catalogue import Catalogue
from server.engine.live.clustering import ClusterDesk
from server.engine.live.context import Live
from server.engine.live.desk import ReviewDesk
from server.engine.live.health import HubWatch, health
from server.engine.live.identification import Identification, ObjectResult, Prepared
from server.engine.live.promotion import Promoter, Promotion
from server.engine.live.thresholds import ThresholdBook
from server.engine.loop import alerts, outbox, reapply, webhooks
from server.engine.loop.labelling import file_result, label_files
from server.engine.loop.outbox import EventSink
from server.engine.project.config import Project
from server.engine.vision.embedders import Embedder
from server.engine.vision.images import content_hash, read_image_bytes

__all__ = ["ObjectResult", "Prepared", "Service"]


class Service:
    """One project, open for identification and changes. See the module docstring."""

    def __init__(self, live: Live) -> None:
        self.live = live
        """What the parts share (the project, model, store, identifier, media)."""
        self._thresholds = ThresholdBook(live)
        self._hubs = HubWatch(live)
        self._catalogue = Catalogue(live, self._thresholds, self._hubs)
        self._annotations = AnnotationDesk(live, self._catalogue)
        self._desk = ReviewDesk(live, self._annotations)
        self._promoter = Promoter(live, self._catalogue)
        self._identification = Identification(live)
        self._clusters = ClusterDesk(live)
        self._thresholds.refresh()

    @classmethod
    def open(
        cls,
        project: Project,
        embedder: Embedder,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Service:
        """Open the project's database and index (see ``Live.open``)."""
        return cls(Live.open(project, embedder, on_event or (lambda event: None), clock))

    def close(self) -> None:
        """Save the index if it changed and close the database."""
        self.live.close()

    def save(self) -> bool:
        """Write the index if it changed since the last save; returns whether it did."""
        return self.live.save()

    def warm_up(self) -> None:
        """Run the model once so the first real request does not pay for lazy set-up."""
        self._identification.warm_up()

    # --- identification (see ``identification``) ------------------------------------

    def prepare(self, image: np.ndarray | bytes, name: str = "upload") -> Prepared:
        """Decode an image and compute its evidence; worker-safe."""
        return self._identification.prepare(image, name)

    def identify_prepared(
        self, prepared: Prepared, *, source: str, live: bool = False, record: bool = True
    ) -> list[ObjectResult]:
        """Decide about a prepared picture, record it and queue a miss."""
        return self._identification.identify_prepared(
            prepared, source=source, live=live, record=record
        )

    def label_plan(self, paths: Sequence[str]) -> list[Path]:
        """The image files under ``paths`` (see ``loop.labelling.label_files``); reads
        no image and no row, so it may run on a worker."""
        return label_files(paths)

    def read_for_label(self, path: Path) -> tuple[bytes, str]:
        """A file's bytes and content hash; worker-safe.

        Raises:
            ImageRejected: it cannot be read, or is too big.
        """
        data = read_image_bytes(path)
        return data, content_hash(data)

    def labelled_before(self, digest: str, path: str) -> contract.LabelledFile | None:
        """The result of a file an earlier run labelled (by content), else None."""
        if not self.live.store.labelled([digest]):
            return None
        return file_result(path, self.live.store, digest, already=True)

    def label_prepared(self, prepared: Prepared, digest: str, path: str) -> contract.LabelledFile:
        """Auto-label a prepared file: decided, recorded, misses queued, marked labelled."""
        return self._identification.label(prepared, digest, path)

    def forget_source(self, source: str) -> None:
        """Drop the tracks of a live source that went away."""
        self._identification.tracker.forget(source)

    # --- references (see ``catalogue``) ---------------------------------------------

    def classes(self) -> list[contract.ClassInfo]:
        """Every class with its taxonomy, number of references and hub flag."""
        return self._catalogue.classes()

    def references(self, label: str) -> list[contract.ReferenceInfo]:
        """The references of one class."""
        return self._catalogue.references(label)

    def reference_rows(self, ids: Collection[int]) -> dict[int, ReferenceRow]:
        """Those of ``ids`` that are active references, by id."""
        return self.live.store.references_by_id(ids)

    def reference_file(self, ref_id: int) -> Path:
        """The image file of an active reference."""
        return self._catalogue.reference_file(ref_id)

    def prepare_reference(
        self, data: bytes, label: object, taxonomy: str | None = None
    ) -> PreparedReference:
        """The heavy, read-only half of adding a reference; worker-safe."""
        return self._catalogue.prepare(data, label, taxonomy)

    def commit_reference(
        self, prepared: PreparedReference, source: str = "api"
    ) -> contract.ReferenceAdded:
        """Commit a prepared reference: searchable by the very next query."""
        return self._catalogue.commit(prepared, source)

    def import_plan(self, path: str, label: object = None) -> list[tuple[Path, object]]:
        """The files an import of ``path`` would add, each with its label."""
        return self._catalogue.import_plan(path, label)

    def remove_reference(self, ref_id: int) -> None:
        """Take a reference out of the index for good."""
        self._catalogue.remove(ref_id)

    def rename_class(self, old: str, new: object) -> contract.ClassRenamed:
        """Rename a class."""
        return self._catalogue.rename_class(old, new)

    def merge_classes(self, sources: Sequence[str], into: str) -> contract.ClassesMerged:
        """Move every reference of ``sources`` into the existing class ``into``."""
        return self._catalogue.merge_classes(sources, into)

    # --- review (see ``desk``) ------------------------------------------------------

    def review_items(
        self,
        status: str = "pending",
        taxonomy: str | None = None,
        reason: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> tuple[list[ReviewItem], int]:
        """Review items newest first, and how many match in all."""
        return self._desk.items(status, taxonomy, reason, limit, before)

    def review_item(self, item_id: int) -> ReviewItem:
        """One review item."""
        return self._desk.item(item_id)

    def resolve_plan(
        self,
        item_id: int,
        action: str,
        label: object = None,
        candidate: int | None = None,
        region: str | None = None,
        author: str = "local",
    ) -> AnnotationPlan:
        """Check a decision and work out its annotation (quick)."""
        return self._desk.plan(item_id, action, label, candidate, region, author)

    def prepare_resolution(self, plan: AnnotationPlan) -> PreparedReference | None:
        """The reference a labelling decision makes; worker-safe."""
        return self._desk.prepare(plan)

    def resolve_commit(
        self, plan: AnnotationPlan, prepared: PreparedReference | None
    ) -> ReviewItem:
        """Apply a decision: commit its annotation and reference, resolve the item."""
        return self._desk.commit(plan, prepared)

    def reopen(self, item_id: int) -> ReviewItem:
        """Undo a reviewer's decision (and remove the reference it made)."""
        return self._desk.reopen(item_id)

    # --- annotations (see ``annotating``) --------------------------------------------

    def annotation(self, annotation_id: int) -> AnnotationRow:
        """One annotation."""
        return self._annotations.get(annotation_id)

    def annotations(
        self, filters: Mapping[str, Any], limit: int = 100, before: int | None = None
    ) -> tuple[list[AnnotationRow], int]:
        """Annotations newest first, filtered, and how many match in all."""
        return self._annotations.find(filters, limit, before)

    def plan_annotation(
        self,
        item_id: int,
        kind: object,
        label: object = None,
        box: object = None,
        region: str | None = None,
        author: str = "local",
    ) -> AnnotationPlan:
        """Check a new annotation of a review item (quick)."""
        return self._annotations.plan_create(item_id, kind, label, box, region, author)

    def plan_annotation_update(
        self, annotation_id: int, changes: Mapping[str, object]
    ) -> AnnotationPlan:
        """Check a change to an annotation (quick)."""
        return self._annotations.plan_update(annotation_id, changes)

    def prepare_annotation(self, plan: AnnotationPlan) -> PreparedReference | None:
        """The reference an annotation makes; worker-safe."""
        return self._annotations.prepare(plan)

    def commit_annotation(
        self, plan: AnnotationPlan, prepared: PreparedReference | None
    ) -> AnnotationRow:
        """Write an annotation with its item's outcome and reference."""
        return self._annotations.commit(plan, prepared)

    def delete_annotation(self, annotation_id: int) -> None:
        """Remove an annotation (its item goes back to the queue, its reference away)."""
        self._annotations.delete(annotation_id)

    def review_stats(self, label: str | None = None, depth: int | None = None) -> contract.Stats:
        """Annotation counts and rates over time, levels to watch, drift, coverage."""
        return self._annotations.stats(label, depth)

    def crop_file(self, item_id: int) -> Path:
        """The stored picture of a review item."""
        return self._desk.picture(item_id)

    def crop_with_box(self, item_id: int) -> bytes:
        """A review item's picture with its box drawn on it (JPEG)."""
        return self._desk.picture_with_box(item_id)

    # --- separate taxonomies (see ``promotion``) --------------------------------------

    def auto_labels(
        self,
        taxonomy: str,
        limit: int = 100,
        before: int | None = None,
        min_confidence: float | None = None,
    ) -> tuple[list[AutoLabel], int]:
        """A separate taxonomy's labelled answers, newest first."""
        return self._promoter.labels(taxonomy, limit, before, min_confidence)

    def promotion_plan(
        self, taxonomy: str, min_confidence: float | None = None, ids: Sequence[int] | None = None
    ) -> list[Promotion]:
        """The answers a promotion takes (quick)."""
        return self._promoter.plan(taxonomy, min_confidence, ids)

    def prepare_promotion(self, step: Promotion) -> PreparedReference:
        """One answer's picture, embedded; worker-safe."""
        return self._promoter.prepare(step)

    def commit_promotion(
        self, step: Promotion, prepared: PreparedReference
    ) -> contract.ReferenceAdded:
        """One answer made a reference, and marked promoted."""
        return self._promoter.commit(step, prepared)

    # --- re-application (see ``loop.reapply``) ---------------------------------------

    def reapply_start(self) -> tuple[Reapplication, bool, int]:
        """The re-application to run (one a crash stopped, resumed; else a new one over
        every answer recorded so far), whether it is resumed, and what it has left."""
        store = self.live.store
        run, resumed = reapply.start(store, self.live.embedder.spec.space_id)
        return run, resumed, reapply.remaining(store, run)

    def reapply_step(self, run: Reapplication) -> tuple[Reapplication, reapply.Step]:
        """Re-decide the next batch of ``run``; each review item it resolves is told."""
        store = self.live.store
        run, step = reapply.apply_batch(
            self.live.ident,
            run,
            reapply.kept_picture(store),
            self.live.project.config.review.reapply_resolves,
            size=reapply.LIVE_BATCH,
            sink=self.live.emit,
        )
        return run, step

    def reapplication(self, running_here: bool) -> contract.Reapplication | None:
        """The newest re-application, as it stands."""
        store = self.live.store
        run = store.last_reapplication()
        if run is None:
            return None
        return reapply.to_json(run, reapply.remaining(store, run), running_here)

    # --- thresholds (see ``thresholds``) --------------------------------------------

    def thresholds(self) -> contract.Thresholds:
        """The thresholds in force, per taxonomy and class, and the overrides."""
        return self._thresholds.describe()

    def set_threshold(
        self, scope: str, name: str, threshold: object = None, margin: object = None
    ) -> contract.Thresholds:
        """Set (or with both None, clear) a taxonomy's or a class's override."""
        return self._thresholds.set(scope, name, threshold, margin)

    def threshold_curve(
        self,
        taxonomy: str | None = None,
        label: str | None = None,
        threshold: float | None = None,
        margin: float | None = None,
    ) -> contract.ThresholdCurve:
        """What moving a taxonomy's or a class's threshold would do."""
        return self._thresholds.curve(taxonomy, label, threshold, margin)

    # --- clusters of unknowns (see ``clustering``) ------------------------------------

    @property
    def clusters(self) -> ClusterDesk:
        """Group the pending unknowns, name, merge, drop, dismiss (see ``clustering``)."""
        return self._clusters

    # --- storage and health ---------------------------------------------------------

    def collect(self, now: datetime | None = None) -> Collected:
        """Apply the retention policy (``review.keep_days``, counted back from ``now``)
        and remove orphan files."""
        return self.live.media.collect(self.live.project.config.review.keep_days, now)

    def prune_outbox(self) -> int:
        """Delete events every webhook has passed, once old (see ``loop.outbox``)."""
        hooks = [w.name for w in self.live.project.config.webhooks]
        return outbox.prune(self.live.store, hooks)

    def check_alerts(self) -> list[contract.AlertEvent]:
        """Raise or clear alerts as the watched rates stand now (see ``loop.alerts``)."""
        cfg = self.live.project.config.alerts
        return alerts.check(self.live.store, cfg, datetime.now(UTC), self.live.emit)

    def dead_letters(self) -> list[contract.DeadLetterInfo]:
        """Events a webhook did not take, not sent since (see ``loop.webhooks``)."""
        return webhooks.dead_letter_info(self.live.store)

    def resend(self, ids: object = None, webhook: object = None) -> int:
        """Mark dead letters to be sent again; how many (see ``loop.webhooks``)."""
        return webhooks.request_resend(self.live.store, self.live.project, ids, webhook)

    def health(self) -> contract.ProjectHealth:
        """Model, index, classes, thresholds, queue, counters, disk use and hubs."""
        return health(
            self.live,
            self._identification,
            self.thresholds(),
            self._hubs.hubs(),
            self._annotations.predicted(),
        )
