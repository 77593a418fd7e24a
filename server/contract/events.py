"""``GET /api/events``: one JSON text message per event, told apart by ``type``."""

# No ``from __future__ import annotations``: on Python 3.11 it makes ``TypedDict`` count
# ``NotRequired`` keys as required (``__required_keys__``), which the contract test reads.
from typing import Literal, NotRequired, TypedDict

from .identification import DetectedObject
from .jobs import JobState
from .kinds import AlertName, AnnotationType, QueueAction, ReviewStatus, ThresholdScope
from .loop import ReapplyCounts


class IdentificationEvent(TypedDict):
    """A picture or frame was identified."""

    type: Literal["identification"]
    source: str
    objects: list[DetectedObject]
    at: float


class QueueEvent(TypedDict):
    """The review queue changed; ``status`` and ``label`` come with ``resolved``."""

    type: Literal["queue"]
    action: QueueAction
    item_id: int
    pending: int
    status: NotRequired[ReviewStatus]
    label: NotRequired[str | None]
    at: float


class AnnotationEvent(TypedDict):
    """An annotation was created, changed or deleted."""

    type: Literal["annotation"]
    action: Literal["created", "updated", "deleted"]
    id: int
    annotation_type: AnnotationType
    label: str | None
    """Its true label."""
    item_id: int | None
    at: float


class ReferencesEvent(TypedDict):
    """A reference was added, removed, or moved to another class (``relabelled``: the
    annotation that made it was changed)."""

    type: Literal["references"]
    action: Literal["added", "removed", "relabelled"]
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


class ClassEvent(TypedDict):
    """A class was created: a reference was added under a label no reference had."""

    type: Literal["class"]
    action: Literal["created"]
    label: str
    taxonomy: str
    at: float


class ReapplyEvent(TypedDict):
    """A re-application finished."""

    type: Literal["reapply"]
    action: Literal["finished"]
    id: int
    counts: ReapplyCounts
    at: float


class AlertEvent(TypedDict):
    """An alert was raised (a rate crossed its level) or cleared (it came back)."""

    type: Literal["alert"]
    action: Literal["raised", "cleared"]
    name: AlertName
    value: float
    """The rate now."""
    level: float
    """The level it crossed (raised) or came back past (cleared)."""
    message: str
    """What it means, in a sentence."""
    at: float


class ClusterEvent(TypedDict):
    """A grouping of the queue found a cluster."""

    type: Literal["cluster"]
    action: Literal["found"]
    id: int
    size: int
    nearest_label: str | None
    nearest_score: float | None
    at: float


class JobEvent(JobState):
    """A job started, finished a step, or ended (without its results)."""

    type: Literal["job"]
    at: float


Event = (
    IdentificationEvent
    | QueueEvent
    | AnnotationEvent
    | ReferencesEvent
    | ClassesEvent
    | ThresholdsEvent
    | ClassEvent
    | ReapplyEvent
    | AlertEvent
    | ClusterEvent
    | JobEvent
)
"""Any message of the events stream, told apart by ``type`` (and ``action``)."""
