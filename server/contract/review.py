"""The review queue: queued items, pages of them, and the decision statistics."""

# No ``from __future__ import annotations``: on Python 3.11 it makes ``TypedDict`` count
# ``NotRequired`` keys as required (``__required_keys__``), which the contract test reads.
from typing import TypedDict

from .identification import Candidate
from .kinds import Reason, Region, ReviewStatus


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
    region: Region
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
