"""Annotations (every decision about a prediction) and what they say over time."""

# No ``from __future__ import annotations``: on Python 3.11 it makes ``TypedDict`` count
# ``NotRequired`` keys as required (``__required_keys__``), which the contract test reads.
from typing import NotRequired, TypedDict

from .jobs import ErrorDetail, Job
from .kinds import AnnotationType
from .review import QueueCounts


class Provenance(TypedDict):
    """What produced the prediction an annotation judges (None: not recorded, as for
    decisions made before annotations existed)."""

    embedder: str | None
    """The vector space: the model id, and ``+head`` with a projection head."""
    detector: str | None
    """The detector kind, and its weights file's name for ``yolo``."""
    threshold: float | None
    margin: float | None
    """The score and margin thresholds the answer was decided with."""


class Annotation(TypedDict):
    """``GET /api/annotations/{id}``, and what create and update answer."""

    id: int
    type: AnnotationType
    item_id: int | None
    """The review item whose picture it is about."""
    predicted_label: str | None
    """The answer given (None: unknown)."""
    candidate_label: str | None
    """The best candidate when it was answered."""
    true_label: str | None
    taxonomy: str | None
    box: list[int] | None
    """In the item's picture (``image_size``); None: the whole picture."""
    image_size: list[int] | None
    score: float | None
    margin: float | None
    reference_id: int | None
    """The reference this annotation made (unified taxonomies), if any."""
    author: str
    """``local``, or ``token`` for a request with the server's token; ``:name`` adds
    the reviewer the client named."""
    provenance: Provenance
    created_at: str
    updated_at: str


class AnnotationPage(TypedDict):
    """``GET /api/annotations``: newest first, and how many match in all."""

    annotations: list[Annotation]
    total: int


class BulkResult(TypedDict):
    """One operation of ``POST /api/annotations/bulk``."""

    index: int
    op: str
    ok: bool
    annotation: NotRequired[Annotation]
    """What a create or update made."""
    deleted: NotRequired[int]
    """The id a delete removed."""
    error: NotRequired[ErrorDetail]


class BulkResponse(TypedDict):
    """``POST /api/annotations/bulk``: a result per operation, in their order."""

    results: list[BulkResult]
    applied: int
    failed: int
    job: Job


class TypeCounts(TypedDict):
    confirmed: int
    corrected: int
    false_positive: int
    missed: int


class TypeRates(TypedDict):
    """Each type's share of the annotations counted; None when there are none."""

    confirmed: float | None
    corrected: float | None
    false_positive: float | None
    missed: float | None


class PeriodCounts(TypedDict):
    """One day (``2026-12-04``) or ISO week (``2026-W49``)."""

    period: str
    total: int
    counts: TypeCounts
    rates: TypeRates


class Watch(TypedDict):
    """A rate to watch against the seeds' level for it (this week's rate)."""

    type: AnnotationType
    level: float
    healthy_above: bool
    """True: healthy above ``level`` (confirmed); else healthy at or below it."""
    rate: float | None
    status: str | None
    """``ok`` or ``watch``; None without annotations this week."""
    meaning: str


class Drift(TypedDict):
    """The last 7 days against the 7 before them."""

    this_week: PeriodCounts
    last_week: PeriodCounts
    change: TypeRates
    """This week's rate less last week's (None where either has no annotations)."""


class LabelCounts(TypedDict):
    label: str
    total: int
    counts: TypeCounts


class AutoLabel(TypedDict):
    """One labelled answer of a separate taxonomy (``GET /api/taxonomies/{name}/labels``):
    what was decided, or what a reviewer said of it."""

    id: int
    """The answer's id (what ``promote`` takes in ``ids``)."""
    label: str
    matched: bool
    """Whether the system accepted it (False: it said unknown and a reviewer named it)."""
    confidence: float
    """The answer's score (a reviewer's label passes any ``min_confidence``)."""
    source_reference_id: int | None
    """The reference it matched."""
    taxonomy: str
    model: str
    """The vector space (model, and ``+head``) it was decided in."""
    reviewed: bool
    item_id: int | None
    promoted_reference_id: int | None
    picture_kept: bool
    created_at: str


class AutoLabelPage(TypedDict):
    labels: list[AutoLabel]
    total: int


class ThresholdAdvice(TypedDict):
    """The thresholds under which the reviewed answers come out best (each re-decided
    there, weighed as the reviewed estimate weighs it), beside those in force."""

    threshold: float
    margin: float
    reviewed: float | None
    """The reviewed open-set accuracy there, and its 95 % interval."""
    low: float | None
    high: float | None
    reviews: int
    current_threshold: float
    current_margin: float
    current_reviewed: float | None
    gain: float
    """What the best pair found would gain over the thresholds in force on the same
    reviews; a change is recommended only when ``gain_low`` (its 95 % low end) is above
    zero, else ``threshold`` and ``margin`` are those in force."""
    gain_low: float


class Reality(TypedDict):
    """Open-set accuracy as reviewers found it, beside ``verify``'s prediction (see
    ``server.engine.loop.estimate``)."""

    reviewed: float | None
    """None until every kind of answer (unknown, thin-margin and other accepts) has a
    review."""
    low: float | None
    high: float | None
    """The 95 % interval."""
    reviews: int
    waiting_for: list[str]
    """The kinds of answers with none reviewed yet."""
    predicted: float | None
    """``verify``'s prediction from synthetic photos (None before verify)."""
    warning: str | None
    """Set when the two differ by more than 10 points."""
    recommended: ThresholdAdvice | None
    """None until 30 answers are judged (and every kind of answer has a review)."""


class Stats(TypedDict):
    """``GET /api/stats`` (``?label=`` keeps a class or a level of its path, ``?depth=``
    counts labels cut to that many levels)."""

    queue: QueueCounts
    annotations: int
    counts: TypeCounts
    rates: TypeRates
    per_day: list[PeriodCounts]
    per_week: list[PeriodCounts]
    watch: list[Watch]
    drift: Drift
    labels: list[LabelCounts]
    reality: Reality
    observations: int
    auto_labelled: int
    coverage: float | None
