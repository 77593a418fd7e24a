"""What the parts of an open project share: the project, its model, store, identifier
and media, and where events go. Used on the engine thread only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.engine.catalog.media import Media
from server.engine.catalog.store import Store
from server.engine.decide.identifier import Identifier
from server.engine.project.config import DEFAULT_TAXONOMY, Project
from server.engine.vision.embedders import Embedder

EventSink = Callable[[dict[str, Any]], None]
"""Receives events (identifications, queue and reference changes); called on the
engine thread, so it must only hand the event over."""


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

    def taxonomies(self) -> set[str]:
        """The taxonomies the project declares, and the default one."""
        return {t.name for t in self.project.config.taxonomies} | {DEFAULT_TAXONOMY}
