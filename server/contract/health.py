"""``GET /api/health``: the project, its model, index, queue, counters, disk use, cameras."""

# No ``from __future__ import annotations``: on Python 3.11 it makes ``TypedDict`` count
# ``NotRequired`` keys as required (``__required_keys__``), which the contract test reads.
from typing import TypedDict

from .annotations import Reality
from .outreach import AlertStatus, WebhookStatus
from .review import QueueCounts
from .thresholds import DefaultThresholds


class MediaUsage(TypedDict):
    """Stored pictures in files and bytes: reference photos and review crops."""

    references_files: int
    references_bytes: int
    crops_files: int
    crops_bytes: int


class Storage(MediaUsage):
    """Disk use in files and bytes."""

    database_bytes: int
    database_wal_bytes: int
    index_bytes: int


class Hub(TypedDict):
    """A reference whose recent matches do not look alike."""

    reference_id: int
    label: str
    matches: int
    agreement: float
    typical: float


class ProjectHealth(TypedDict):
    """The engine's part of health: the project, its model, index, queue and counters."""

    project: str
    model: str
    projection: str
    device: str
    """Where the model runs (``model.device`` with ``auto`` resolved)."""
    index_size: int
    classes: int
    thresholds: DefaultThresholds
    queue: QueueCounts
    identified: int
    queued: int
    gate_rejected: dict[str, int]
    tracks: int
    uptime_s: float
    storage: Storage
    hubs: list[Hub]
    reality: Reality
    """Open-set accuracy as reviewers found it, beside ``verify``'s prediction."""
    alerts: list[AlertStatus]
    """Alerts raised and not cleared (``alerts:`` in the project file)."""


class ServerCounters(TypedDict):
    """What the transport did: live frames, refused and failed requests."""

    frames_received: int
    frames_dropped: dict[str, int]
    server_errors: int
    live_clients: int
    writes_in_flight: int
    writes_refused: int


class StageTiming(TypedDict):
    """Mean milliseconds per identified image in each stage."""

    prepare_ms: float
    decide_ms: float


class ServerHealth(ServerCounters, StageTiming):
    """The server's part of health: its counters, load, timing and events."""

    pending: int
    images_in_flight: int
    busy_refused: int
    workers: int
    event_subscribers: int
    events_dropped: int


class CameraStatus(TypedDict):
    """A camera the server reads: its state, frames read, reconnects, last error; frames
    whose identification failed, and the last such failure."""

    name: str
    state: str
    frames: int
    reconnects: int
    error: str | None
    failed_frames: int
    identify_error: str | None


class Health(ProjectHealth):
    """``GET /api/health``."""

    server: ServerHealth
    cameras: list[CameraStatus]
    webhooks: list[WebhookStatus]
    """Each webhook's delivery (see ``GET /api/webhooks``)."""
