"""The project's SQLite database (sqlite-utils, WAL, versioned migrations).

Every image or crop the system has seen is a row of ``images``; the vector index keys
are these row ids. Embeddings are stored per model so the index can be rebuilt, or the
model switched back, without re-reading a single image. Every SQL statement of the
product lives in this package, one module per kind of row.
"""

from __future__ import annotations

from server.engine.catalog.store.annotations import AnnotationRow, AnnotationRows
from server.engine.catalog.store.base import now_iso
from server.engine.catalog.store.clusters import ClusterRow, ClusterRows, ClusterRunRow, MapPoint
from server.engine.catalog.store.files import FileRows
from server.engine.catalog.store.labels import AutoLabel, LabelRows
from server.engine.catalog.store.observations import ObservationRows, QueueEntry, Recorded
from server.engine.catalog.store.outbox import (
    DeadLetter,
    OutboxEvent,
    OutboxRows,
    RaisedAlert,
    WebhookCursor,
)
from server.engine.catalog.store.references import ReferenceRow, ReferenceRows
from server.engine.catalog.store.review import MAX_PAGE, REASONS, STATUSES, ReviewItem, ReviewRows
from server.engine.catalog.store.runs import LabelledObject, Reapplication, RunRows, StoredDecision
from server.engine.catalog.store.schema import MIGRATIONS
from server.engine.catalog.store.thresholds import ThresholdRows
from server.engine.catalog.store.training import TrainingRow, TrainingRows, VersionRow
from server.engine.catalog.store.vectors import VectorRows

__all__ = [
    "MAX_PAGE",
    "MIGRATIONS",
    "REASONS",
    "STATUSES",
    "AnnotationRow",
    "AutoLabel",
    "ClusterRow",
    "ClusterRunRow",
    "DeadLetter",
    "LabelledObject",
    "MapPoint",
    "OutboxEvent",
    "QueueEntry",
    "RaisedAlert",
    "Reapplication",
    "Recorded",
    "ReferenceRow",
    "ReviewItem",
    "Store",
    "StoredDecision",
    "TrainingRow",
    "VersionRow",
    "WebhookCursor",
    "now_iso",
]


class Store(
    AnnotationRows,
    LabelRows,
    ReferenceRows,
    VectorRows,
    ObservationRows,
    ReviewRows,
    FileRows,
    ThresholdRows,
    RunRows,
    OutboxRows,
    ClusterRows,
    TrainingRows,
):
    """Typed access to the project database. One writer at a time (see DESIGN.md)."""
