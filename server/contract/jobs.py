"""Long work (imports, bulk review) and the error body every failed request gets."""

# No ``from __future__ import annotations``: on Python 3.11 it makes ``TypedDict`` count
# ``NotRequired`` keys as required (``__required_keys__``), which the contract test reads.
from typing import Any, NotRequired, TypedDict

from .kinds import JobStatus


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
