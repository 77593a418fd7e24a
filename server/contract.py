"""The API contract: every JSON shape the server sends and the terminal UI reads,
defined once, as ``TypedDict``s.

It imports nothing of the project and nothing but the standard library's ``typing``, so
both sides import it (``server.http`` to build its answers, ``identify_tui`` to read
them) and neither imports the other. ``tests/server/test_contract.py`` holds real answers
of a running server against it: a key added on one side only fails there.
"""

# No ``from __future__ import annotations`` here: on Python 3.11 it makes ``TypedDict``
# count ``NotRequired`` keys as required (``__required_keys__``), which the test reads.
from typing import Any, Literal, NotRequired, TypedDict

Reason = Literal["matched", "below_threshold", "low_margin", "empty_index"]
"""Why an object was accepted or not (a queued miss is never ``matched``)."""
ReviewStatus = Literal["pending", "confirmed", "corrected", "false_positive", "skipped"]
"""``pending`` until a person acts; the others are final."""
ThresholdScope = Literal["taxonomy", "class"]
ResolveAction = Literal["confirm", "correct", "false_positive", "skip"]
"""What a reviewer may do with a queued item."""
JobStatus = Literal["running", "done", "cancelled", "failed"]
"""``running``, then one of the others."""

# --- identification ------------------------------------------------------------------


class Candidate(TypedDict):
    """One class in an object's ranking, with its best reference and the evidence."""

    label: str
    score: float
    cosine: float
    reference_id: int
    inliers: NotRequired[int]
    """Homography inliers, when the second stage ran for it."""
    appearance: NotRequired[float]
    """Colour-layout similarity (0-1), when it was compared."""


class DetectedObject(TypedDict):
    """One object found in a picture or frame: the decision and what became of it."""

    bbox: list[int] | None
    label: str | None
    score: float
    margin: float
    matched: bool
    reason: Reason
    reference_id: int | None
    candidates: list[Candidate]
    track_id: str | None
    review_id: int | None


class IdentifyResponse(TypedDict):
    """``POST /api/identify``."""

    objects: list[DetectedObject]
    elapsed_ms: float


# --- review --------------------------------------------------------------------------


class ReviewItem(TypedDict):
    """A queued miss (``GET /api/review/{id}``, and what resolve and reopen answer)."""

    id: int
    reason: Reason
    taxonomy: str | None
    source: str | None
    track_id: str | None
    label: str | None
    score: float
    margin: float
    candidates: list[Candidate]
    status: ReviewStatus
    resolved_label: str | None
    reference_id: int | None
    created_at: str
    resolved_at: str | None
    box: list[int] | None
    region: Literal["whole", "verified", "doubtful"]
    seen: int


class ReviewPage(TypedDict):
    """``GET /api/review``: a page of items, newest first, and how many match in all."""

    items: list[ReviewItem]
    total: int


class QueueCounts(TypedDict):
    """Review items per status."""

    pending: int
    confirmed: int
    corrected: int
    false_positive: int
    skipped: int


class DayCounts(TypedDict):
    """Items resolved on one day (UTC), per final status."""

    day: str
    confirmed: int
    corrected: int
    false_positive: int
    skipped: int


class DecisionRates(TypedDict):
    """Share of decided items per decision; None before any decision."""

    confirmed: float | None
    corrected: float | None
    false_positive: float | None


class Stats(TypedDict):
    """``GET /api/stats``."""

    queue: QueueCounts
    per_day: list[DayCounts]
    rates: DecisionRates
    observations: int
    auto_labelled: int
    coverage: float | None


# --- classes and references ----------------------------------------------------------


class ClassInfo(TypedDict):
    """A class with its taxonomy and reference count; ``hub`` when one of its references
    wins matches that do not look alike."""

    label: str
    taxonomy: str
    references: int
    hub: bool


class ClassList(TypedDict):
    """``GET /api/classes``."""

    classes: list[ClassInfo]


class ReferenceInfo(TypedDict):
    """One reference of a class."""

    id: int
    label: str
    taxonomy: str
    source: str
    path: str
    hub: bool


class ClassReferences(TypedDict):
    """``GET /api/classes/references?label=``."""

    label: str
    references: list[ReferenceInfo]


# --- thresholds ----------------------------------------------------------------------


class ThresholdPair(TypedDict):
    """A score threshold and a margin threshold."""

    threshold: float
    margin: float


class DefaultThresholds(ThresholdPair):
    """The project default (for crops), and for whole pictures when calibrated apart."""

    calibrated: bool
    picture: ThresholdPair | None


class TaxonomyThresholds(ThresholdPair):
    """A taxonomy's thresholds in force, for crops and for whole pictures."""

    picture: ThresholdPair


class ClassThresholds(TypedDict):
    """A class's explicit values; None inherits its taxonomy's."""

    threshold: float | None
    margin: float | None


class ThresholdOverride(ClassThresholds):
    """A value set through the server, over the project file's."""

    scope: ThresholdScope
    name: str


class Thresholds(TypedDict):
    """``GET /api/thresholds`` (and what ``PUT`` answers)."""

    default: DefaultThresholds
    taxonomies: dict[str, TaxonomyThresholds]
    classes: dict[str, ClassThresholds]
    overrides: list[ThresholdOverride]


class CurvePoint(TypedDict):
    """Coverage and precision at one threshold (None when nothing counts)."""

    threshold: float
    coverage: float | None
    precision: float | None
    judged: int


class ThresholdCurve(TypedDict):
    """``GET /api/thresholds/curve``: points around a taxonomy's or a class's threshold."""

    taxonomy: str | None
    label: str | None
    threshold: float
    margin: float
    observed: int
    reviewed: int
    points: list[CurvePoint]


# --- health --------------------------------------------------------------------------


class Storage(TypedDict):
    """Disk use in files and bytes."""

    references_files: int
    references_bytes: int
    crops_files: int
    crops_bytes: int
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
    """A camera the server reads: its state, frames read, reconnects, last error."""

    name: str
    state: str
    frames: int
    reconnects: int
    error: str | None


class Health(ProjectHealth):
    """``GET /api/health``."""

    server: ServerHealth
    cameras: list[CameraStatus]


# --- jobs and errors -----------------------------------------------------------------


class JobState(TypedDict):
    """Where a piece of long work (an import, a bulk review) stands."""

    id: int
    kind: str
    status: JobStatus
    done: int
    total: int
    started_at: float
    finished_at: float | None
    error: str | None


class Job(JobState):
    """A job as the API lists it; ``results`` (one per finished step) when asked for one."""

    results: NotRequired[list[dict[str, Any]]]


class ErrorDetail(TypedDict):
    """A machine-readable code and a message for the user."""

    code: str
    message: str


class ErrorBody(TypedDict):
    """Every error answer."""

    error: ErrorDetail


# --- events (``GET /api/events``, one JSON text message each) ------------------------


class IdentificationEvent(TypedDict):
    """A picture or frame was identified."""

    type: Literal["identification"]
    source: str
    objects: list[DetectedObject]
    at: float


class QueueEvent(TypedDict):
    """The review queue changed; ``status`` and ``label`` come with ``resolved``."""

    type: Literal["queue"]
    action: Literal["added", "seen_again", "resolved", "reopened"]
    item_id: int
    pending: int
    status: NotRequired[ReviewStatus]
    label: NotRequired[str | None]
    at: float


class ReferencesEvent(TypedDict):
    """A reference was added or removed."""

    type: Literal["references"]
    action: Literal["added", "removed"]
    id: int
    label: str
    at: float


# The functional form, because ``from`` is a keyword.
ClassesEvent = TypedDict(
    "ClassesEvent",
    {
        "type": Literal["references"],
        "action": Literal["renamed", "merged"],
        "from": str | list[str],
        "to": str,
        "at": float,
    },
)
"""A class was renamed (``from`` one label) or merged (``from`` a list of labels)."""


class ThresholdsEvent(TypedDict):
    """A threshold override was set or cleared."""

    type: Literal["thresholds"]
    scope: ThresholdScope
    name: str
    threshold: float | None
    margin: float | None
    at: float


class JobEvent(JobState):
    """A job started, finished a step, or ended (without its results)."""

    type: Literal["job"]
    at: float


Event = (
    IdentificationEvent | QueueEvent | ReferencesEvent | ClassesEvent | ThresholdsEvent | JobEvent
)
"""Any message of the events stream, told apart by ``type`` (and ``action``)."""
