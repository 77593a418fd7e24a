"""What ``identify verify`` reports, as data and as text."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

VERDICTS = (
    (0.3, "good: ship it"),
    (0.1, "fair: consider more references or training"),
    (-math.inf, "poor: the set needs training or better references"),
)
"""The seed's margin guidance (median margin > 0.3 good, 0.1-0.3 fair, < 0.1 poor)."""


def margin_verdict(median_margin: float) -> str:
    """The seed's guidance for a median margin (see ``VERDICTS``)."""
    return next(text for bound, text in VERDICTS if median_margin > bound)


@dataclass
class VerifyReport:
    """Everything ``identify verify`` found."""

    project: str
    model: str
    references: int
    classes: int
    queries: int
    top1_accuracy: float
    margin_median: float
    margin_p10: float
    verdict: str
    confusable_pairs: list[dict[str, Any]]
    unknown_score_median: float
    unknown_score_p90: float
    threshold: float
    margin_threshold: float
    known_accept_rate: float
    unknown_reject_rate: float
    expected_unknown_share: float
    predicted_open_set_accuracy: float
    written: bool
    seconds: float
    backgrounds: str
    pictures: dict[str, Any] | None = None
    """The whole-picture pass (located camera frames): its queries, top-1, thresholds,
    rates and predicted open-set accuracy; None when it did not run."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` report."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def format_report(r: VerifyReport) -> str:
    """The human-readable report."""
    lines = [
        (
            f"verify {r.project}: {r.references} references, {r.classes} classes, "
            f"{r.queries} synthetic camera-like queries ({r.backgrounds}), model {r.model}"
        ),
        f"  top-1 accuracy          {r.top1_accuracy:.3f}",
        f"  margin median / p10     {r.margin_median:.3f} / {r.margin_p10:.3f}   -> {r.verdict}",
        (
            f"  unknown-like score      median {r.unknown_score_median:.3f}, "
            f"p90 {r.unknown_score_p90:.3f} (best other class, own class hidden)"
        ),
        f"  recommended thresholds  score >= {r.threshold:.2f}, margin >= {r.margin_threshold:.2f}"
        + ("  (written to the project)" if r.written else "  (not written: --no-write)"),
        (
            f"  at these thresholds     known accepted correctly {r.known_accept_rate:.3f}, "
            f"unknown rejected {r.unknown_reject_rate:.3f}"
        ),
        (
            f"  predicted open-set accuracy {r.predicted_open_set_accuracy:.3f} "
            f"(assuming {r.expected_unknown_share:.0%} of live queries are unknown things)"
        ),
    ]
    if r.pictures:
        p = r.pictures
        lines.append(
            f"  whole pictures          {p['queries']} located camera frames: top-1 "
            f"{p['top1_accuracy']:.3f}; score >= {p['threshold']:.2f}, margin >= "
            f"{p['margin_threshold']:.2f}; known accepted correctly "
            f"{p['known_accept_rate']:.3f}, unknown rejected {p['unknown_reject_rate']:.3f}; "
            f"predicted open-set accuracy {p['predicted_open_set_accuracy']:.3f}"
        )
    if r.confusable_pairs:
        lines.append("  most confusable pairs (mean margin, wrong top-1 / queries):")
        for p in r.confusable_pairs[:5]:
            lines.append(
                f"    {p['label']}  vs  {p['confused_with']}   {p['mean_margin']:+.3f}, "
                f"{p['wrong_top1']}/{p['queries']}"
            )
    lines.extend(f"  note: {n}" for n in r.notes)
    return "\n".join(lines)
