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
    detector_found_nothing: NotRequired[bool]
    """True when the project's detector found nothing in the picture, so this object is
    the one the window search located instead."""


class IdentifyResponse(TypedDict):
    """``POST /api/identify``."""

    objects: list[DetectedObject]
    image_size: list[int]
    """[width, height] of the picture the boxes and corners are in: the upload, or the
    working copy it was scaled down to when its longer side was larger."""
    elapsed_ms: float
