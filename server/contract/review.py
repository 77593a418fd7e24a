"""The review queue: queued items, pages of them, and their counts."""

# No ``from __future__ import annotations``: on Python 3.11 it makes ``TypedDict`` count
# ``NotRequired`` keys as required (``__required_keys__``), which the contract test reads.
from typing import TypedDict

from .identification import Candidate
from .kinds import QueueReason, Region, ReviewStatus


class ReviewItem(TypedDict):
    """A queued miss (``GET /api/review/{id}``, and what resolve and reopen answer)."""

    id: int
    reason: QueueReason
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
    accepted_label: str | None
    """The class that was accepted, for an accepted answer queued to be checked; None
    for a miss (its answer was unknown)."""


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
    auto: int
    """Resolved by a re-application: the miss matches now."""
