"""What the parts of an open project share: the project, its model, store, identifier
and media, and where events go; opening and closing them. Used on the engine thread
only."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from server import contract
from server.engine.catalog.media import Media
from server.engine.catalog.store import Store
from server.engine.catalog.vectors import sync_index
from server.engine.decide.identifier import Identifier
from server.engine.loop.outbox import EventSink, tell
from server.engine.project.config import DEFAULT_TAXONOMY, Project
from server.engine.vision import detectors
from server.engine.vision.detectors import Detector
from server.engine.vision.embedders import Embedder


@dataclass(frozen=True)
class Live:
    """The shared resources of one open project."""

    project: Project
    embedder: Embedder
    store: Store
    ident: Identifier
    media: Media
    emit: EventSink
    clock: Callable[[], float]
    detector: Detector | None = None
    """The project's detector; None: the identifier's window search (``locate``)."""

    @classmethod
    def open(
        cls,
        project: Project,
        embedder: Embedder,
        emit: EventSink,
        clock: Callable[[], float] = time.monotonic,
    ) -> Live:
        """Open the project's database and index, bringing the index in step with it.

        Raises:
            NotIndexedError: the project was never indexed.
            IndexMismatchError: the index was built with another model.
            ModelUnavailableError: the detector's weights cannot be used.
        """
        detector = detectors.make(project.config.detector, project.data_dir)
        store = Store(project.db_path)
        try:
            index, changed = sync_index(project, store, embedder)
            ident = Identifier(project, embedder, store, index)
        except BaseException:
            store.close()
            raise
        index.unsaved = index.unsaved or changed
        media = Media(project.data_dir, store)
        return cls(project, embedder, store, ident, media, emit, clock, detector)

    def save(self) -> bool:
        """Write the index if it changed since the last save; returns whether it did."""
        index = self.ident.index
        if not index.unsaved:
            return False
        index.save()
        return True

    def tell(self, event: contract.Event) -> None:
        """Write an event worth telling to the outbox, in the transaction of its change
        (call it inside that ``store.transaction()``), and hand it to ``emit`` once that
        commits (see ``loop.outbox``)."""
        tell(self.store, event, self.emit)

    def close(self) -> None:
        """Save the index if it changed and close the database."""
        try:
            self.save()
        finally:
            self.store.close()

    def taxonomies(self) -> set[str]:
        """The taxonomies the project declares, and the default one."""
        return {t.name for t in self.project.config.taxonomies} | {DEFAULT_TAXONOMY}
