"""Bulk auto-labelling (``POST /api/label``, ``identify label --json``) and
re-application (``POST /api/reapply``, ``identify reapply --json``)."""

from typing import TypedDict


class LabelledObject(TypedDict):
    """One object of a labelled picture, as decided now."""

    observation_id: int
    bbox: list[int] | None
    """Its box in the picture (None: the whole picture)."""
    label: str | None
    """A reviewer's label, else the accepted answer's; None while unknown."""
    matched: bool
    score: float
    margin: float
    taxonomy: str | None
    review_id: int | None
    """Its review item, when it was queued."""
    status: str
    """``auto`` (accepted, not queued), or its review item's status."""


class LabelledFile(TypedDict):
    """One file of a labelling run (a job result)."""

    path: str
    ok: bool
    already: bool
    """It was labelled by an earlier run (found by its content) and not decided again."""
    objects: list[LabelledObject]


class LabelError(TypedDict):
    path: str
    error: str


class LabelSummary(TypedDict):
    """What a labelling run did; counts are of every file given, as decided now."""

    pictures: int
    labelled: int
    """Decided by this run."""
    already_labelled: int
    unreadable: int
    objects: int
    accepted: int
    coverage: float
    """Accepted objects / objects."""
    queued: int
    classes: dict[str, int]
    """Accepted objects per class, most first."""
    errors: list[LabelError]
    """The first 100 unreadable files and why."""


class ReapplyCounts(TypedDict):
    """What a re-application changed."""

    seen: int
    """Observations re-decided."""
    newly_labelled: int
    """Unknown before, accepted now."""
    relabelled: int
    """Accepted before as another class."""
    unlabelled: int
    """Accepted before, unknown now."""
    unchanged: int
    resolved: int
    """Pending review items that now match, resolved as ``auto``."""
    second_stage: int
    """Decisions whose shortlist lacked stored second-stage evidence: re-run from the
    kept picture (or, without one, decided on what was stored)."""
    second_stage_rerun: int
    """Of those, the ones re-run from the kept picture."""
    other_space: int
    """Observations stored in another vector space (another model or head), left as
    they were."""


class Reapplication(TypedDict):
    """One re-application (``GET /api/reapply``)."""

    id: int
    status: str
    """``running``, ``interrupted`` (stopped by a crash: the next run resumes it),
    ``done``."""
    done: int
    """Observations re-decided so far."""
    total: int
    counts: ReapplyCounts
    started_at: str
    finished_at: str | None
