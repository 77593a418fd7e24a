"""Score and margin thresholds in force, overrides, and the coverage/precision curve."""

# No ``from __future__ import annotations``: on Python 3.11 it makes ``TypedDict`` count
# ``NotRequired`` keys as required (``__required_keys__``), which the contract test reads.
from typing import TypedDict

from .kinds import ThresholdScope


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


class ClassSetting(ClassThresholds):
    """A class with explicit values: them, its taxonomy, and what is in force for it in
    crops and in whole pictures (its values over its taxonomy's)."""

    taxonomy: str
    in_force: ThresholdPair
    picture: ThresholdPair


class ThresholdOverride(ClassThresholds):
    """A value set through the server, over the project file's."""

    scope: ThresholdScope
    name: str


class Thresholds(TypedDict):
    """``GET /api/thresholds`` (and what ``PUT`` answers)."""

    default: DefaultThresholds
    taxonomies: dict[str, TaxonomyThresholds]
    classes: dict[str, ClassSetting]
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
