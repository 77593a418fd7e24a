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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.catalog.media import Collected, Media
from server.engine.catalog.store import ReviewItem, Store
from server.engine.catalog.vectors import sync_index
from server.engine.decide.identifier import Identifier
from server.engine.live.catalogue import Catalogue, PreparedReference
from server.engine.live.context import EventSink, Live
from server.engine.live.desk import Resolution, ReviewDesk
from server.engine.live.health import HubWatch, health
from server.engine.live.identification import Identification, ObjectResult, Prepared
from server.engine.live.thresholds import ThresholdBook
from server.engine.project.config import Project
from server.engine.vision.embedders import Embedder

__all__ = ["ObjectResult", "Prepared", "Service"]


class Service:
    """One project, open for identification and changes. See the module docstring."""

    def __init__(
        self,
        project: Project,
        embedder: Embedder,
        store: Store,
        identifier: Identifier,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        media = Media(project.data_dir, store)
        emit = on_event or (lambda event: None)
        self.live = Live(project, embedder, store, identifier, media, emit, clock)
        self.store = store
        self.thresholds_book = ThresholdBook(self.live)
        self.hub_watch = HubWatch(self.live)
        self.catalogue = Catalogue(self.live, self.thresholds_book, self.hub_watch)
        self.desk = ReviewDesk(self.live, self.catalogue)
        self.identification = Identification(self.live)

    @classmethod
    def open(
        cls, project: Project, embedder: Embedder, on_event: EventSink | None = None
    ) -> Service:
        """Open the project's database and index (bringing the index in step).

        Raises:
            NotIndexedError: the project was never indexed.
            IndexMismatchError: the index was built with another model.
        """
        store = Store(project.db_path)
        try:
            index, changed = sync_index(project, store, embedder)
            ident = Identifier(project, embedder, store, index)
        except BaseException:
            store.close()
            raise
        index.unsaved = index.unsaved or changed
        service = cls(project, embedder, store, ident, on_event)
        service.thresholds_book.refresh()
        return service

    def close(self) -> None:
        """Save the index if it changed and close the database."""
        try:
            self.save()
        finally:
            self.store.close()

    def save(self) -> bool:
        """Write the index if it changed since the last save; returns whether it did."""
        index = self.live.ident.index
        if not index.unsaved:
            return False
        index.save()
        return True

    def warm_up(self) -> None:
        """Run the model once so the first real request does not pay for lazy set-up."""
        self.live.ident.regions(np.full((480, 640, 3), 127, np.uint8))

    # --- identification (see ``identification``) ------------------------------------

    def prepare(self, image: np.ndarray | bytes, name: str = "upload") -> Prepared:
        """Decode an image and compute its evidence; worker-safe."""
        return self.identification.prepare(image, name)

    def identify_prepared(
        self, prepared: Prepared, *, source: str, live: bool = False, record: bool = True
    ) -> list[ObjectResult]:
        """Decide about a prepared picture, record it and queue a miss."""
        return self.identification.identify_prepared(
            prepared, source=source, live=live, record=record
        )

    def identify(
        self,
        image: np.ndarray | bytes,
        *,
        source: str,
        live: bool = False,
        record: bool = True,
        name: str = "upload",
    ) -> list[ObjectResult]:
        """``prepare`` then ``identify_prepared``, on the calling thread."""
        prepared = self.prepare(image, name)
        return self.identify_prepared(prepared, source=source, live=live, record=record)

    def forget_source(self, source: str) -> None:
        """Drop the tracks of a live source that went away."""
        self.identification.tracker.forget(source)

    # --- references (see ``catalogue``) ---------------------------------------------

    def classes(self) -> list[dict[str, Any]]:
        """Every class with its taxonomy, number of references and hub flag."""
        return self.catalogue.classes()

    def references(self, label: str) -> list[dict[str, Any]]:
        """The references of one class."""
        return self.catalogue.references(label)

    def reference_file(self, ref_id: int) -> Path:
        """The image file of an active reference."""
        return self.catalogue.reference_file(ref_id)

    def prepare_reference(
        self, data: bytes, label: object, taxonomy: str | None = None
    ) -> PreparedReference:
        """The heavy, read-only half of adding a reference; worker-safe."""
        return self.catalogue.prepare(data, label, taxonomy)

    def commit_reference(self, prepared: PreparedReference, source: str = "api") -> dict[str, Any]:
        """Commit a prepared reference: searchable by the very next query."""
        return self.catalogue.commit(prepared, source)

    def add_reference(
        self, data: bytes, label: object, taxonomy: str | None = None, source: str = "api"
    ) -> dict[str, Any]:
        """``prepare_reference`` then ``commit_reference``, on the calling thread."""
        return self.commit_reference(self.prepare_reference(data, label, taxonomy), source)

    def import_plan(self, path: str, label: object = None) -> list[tuple[Path, object]]:
        """The files an import of ``path`` would add, each with its label."""
        return self.catalogue.import_plan(path, label)

    def remove_reference(self, ref_id: int) -> None:
        """Take a reference out of the index for good."""
        self.catalogue.remove(ref_id)

    def rename_class(self, old: str, new: object) -> dict[str, Any]:
        """Rename a class."""
        return self.catalogue.rename_class(old, new)

    def merge_classes(self, sources: Sequence[str], into: str) -> dict[str, Any]:
        """Move every reference of ``sources`` into the existing class ``into``."""
        return self.catalogue.merge_classes(sources, into)

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
        return self.store.review_items(status, taxonomy, reason, limit, before)

    def review_item(self, item_id: int) -> ReviewItem:
        """One review item."""
        return self.store.review_item(item_id)

    def resolve_plan(
        self,
        item_id: int,
        action: str,
        label: object = None,
        candidate: int | None = None,
        region: str | None = None,
    ) -> Resolution:
        """Check a decision and work out its label (quick)."""
        return self.desk.plan(item_id, action, label, candidate, region)

    def prepare_resolution(self, plan: Resolution) -> PreparedReference | None:
        """The reference a labelling decision makes; worker-safe."""
        return self.desk.prepare(plan)

    def resolve_commit(self, plan: Resolution, prepared: PreparedReference | None) -> ReviewItem:
        """Apply a decision: commit its reference and resolve the item."""
        return self.desk.commit(plan, prepared)

    def reopen(self, item_id: int) -> ReviewItem:
        """Undo a reviewer's decision (and remove the reference it made)."""
        return self.desk.reopen(item_id)

    def review_stats(self) -> dict[str, Any]:
        """Queue size, decisions per day, decision rates and auto-label coverage."""
        return self.desk.stats()

    def crop_file(self, item_id: int) -> Path:
        """The stored picture of a review item."""
        return self.desk.picture(item_id)

    def crop_with_box(self, item_id: int) -> bytes:
        """A review item's picture with its box drawn on it (JPEG)."""
        return self.desk.picture_with_box(item_id)

    # --- thresholds (see ``thresholds``) --------------------------------------------

    def thresholds(self) -> dict[str, Any]:
        """The thresholds in force, per taxonomy and class, and the overrides."""
        return self.thresholds_book.describe()

    def set_threshold(
        self, scope: str, name: str, threshold: object = None, margin: object = None
    ) -> dict[str, Any]:
        """Set (or with both None, clear) a taxonomy's or a class's override."""
        return self.thresholds_book.set(scope, name, threshold, margin)

    def threshold_curve(
        self,
        taxonomy: str | None = None,
        label: str | None = None,
        threshold: float | None = None,
        margin: float | None = None,
    ) -> dict[str, Any]:
        """What moving a taxonomy's or a class's threshold would do."""
        return self.thresholds_book.curve(taxonomy, label, threshold, margin)

    # --- storage and health ---------------------------------------------------------

    def collect(self) -> Collected:
        """Apply the retention policy (``review.keep_days``) and remove orphan files."""
        return self.live.media.collect(self.live.project.config.review.keep_days)

    def hubs(self) -> list[dict[str, Any]]:
        """References whose recent matches do not look alike."""
        return self.hub_watch.hubs()

    def health(self) -> dict[str, Any]:
        """Model, index, classes, thresholds, queue, counters, disk use and hubs."""
        return health(self.live, self.identification, self.thresholds(), self.hubs())
