"""The threshold curve's arithmetic on hand-made scores."""

from __future__ import annotations

from server.engine.decide.curve import CURVE_SPAN, threshold_curve

OBSERVED = [(0.9, 0.2), (0.7, 0.1), (0.5, 0.0)]
REVIEWED = [(0.7, 0.1, True), (0.5, 0.0, False)]


def test_curve_counts_coverage_and_precision() -> None:
    points = threshold_curve(OBSERVED, REVIEWED, 0.6, 0.0)
    assert len(points) == 2 * CURVE_SPAN + 1
    rows = {round(p.threshold, 2): (p.coverage, p.precision, p.judged) for p in points}
    assert rows[0.6] == (2 / 3, 1.0, 1)
    assert rows[0.5] == (1.0, 0.5, 2)
    assert rows[0.7] == (2 / 3, 1.0, 1)
    assert rows[0.52] == (2 / 3, 1.0, 1)
    strict = {round(p.threshold, 2): p for p in threshold_curve(OBSERVED, REVIEWED, 0.6, 0.15)}
    assert (strict[0.6].coverage, strict[0.6].precision, strict[0.6].judged) == (1 / 3, None, 0)


def test_nothing_seen_yet_gives_no_rates() -> None:
    points = threshold_curve([], [], 0.6, 0.0)
    assert all(p.coverage is None and p.precision is None and p.judged == 0 for p in points)
    assert points[CURVE_SPAN].to_json() == {
        "threshold": 0.6,
        "coverage": None,
        "precision": None,
        "judged": 0,
    }
