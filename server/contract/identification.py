"""What identifying a picture answers: each object found, its decision and candidates."""

# No ``from __future__ import annotations``: on Python 3.11 it makes ``TypedDict`` count
# ``NotRequired`` keys as required (``__required_keys__``), which the contract test reads.
from typing import NotRequired, TypedDict

from .kinds import Reason


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
    aligned: NotRequired[float]
    """Pixel correlation with the reference after aligning the flat thing (-1 to 1),
    when it was compared."""


class Decided(TypedDict):
    """The decision about one object (an object of ``identify match --json``)."""

    bbox: list[int] | None
    quad: list[list[float]] | None
    """The four corners (x, y), clockwise from the top left, when a detector found them."""
    label: str | None
    rarity: str | None
    """The accepted reference's rarity code, split off its file name (``_ur``)."""
    score: float
    margin: float
    matched: bool
    reason: Reason
    reference_id: int | None
    candidates: list[Candidate]


class DetectedObject(Decided):
    """One object found in a picture or frame: the decision and what became of it."""

    track_id: str | None
    review_id: int | None


class IdentifyResponse(TypedDict):
    """``POST /api/identify``."""

    objects: list[DetectedObject]
    elapsed_ms: float
