"""verify's arithmetic on hand-made outcomes: the operating point it recommends, the
seed's margin guidance, the confusable pairs, and the report that shows them."""

from __future__ import annotations

import pytest

from server.engine.decide.decision import Candidate
from server.engine.workflows.verify import QueryOutcome, _confusable, _outcome, _rank_thresholds
from server.engine.workflows.verify_report import VerifyReport, format_report, margin_verdict


def _ranking(*pairs: tuple[str, float]) -> list[Candidate]:
    return [
        Candidate(label, score, reference_id=i, cosine=score)
        for i, (label, score) in enumerate(pairs)
    ]


def _query(
    label: str, known: list[tuple[str, float]], unknown: list[tuple[str, float]]
) -> QueryOutcome:
    """One synthetic query: its ranking with its class indexed, and with it hidden."""
    return _outcome(label, _ranking(*known), _ranking(*unknown))


def test_the_threshold_separates_known_from_unknown_scores() -> None:
    # Known queries score 0.8 with a 0.3 margin; hidden, their best other class scores
    # 0.5, far above any other (so no margin tells them apart). Any threshold in
    # (0.5, 0.8] is perfect; the grid's first is 0.51, and among equally good margins
    # the largest (the safest) is kept.
    outcomes = [_query(c, [(c, 0.8), ("x", 0.5)], [("x", 0.5), ("y", 0.1)]) for c in "abcd"]
    acc, thr, mar, known_ok, unknown_ok = _rank_thresholds(outcomes, unknown_share=0.5)
    assert (acc, known_ok, unknown_ok) == (1.0, 1.0, 1.0)
    assert thr == pytest.approx(0.51) and mar == pytest.approx(0.2)


def test_the_margin_rejects_unknowns_that_score_high_between_two_near_classes() -> None:
    # Hidden, each query scores 0.9 on two near-identical other classes (margin 0.02):
    # no threshold that accepts the known answers (0.8) rejects them; a margin does.
    outcomes = [_query(c, [(c, 0.8), ("x", 0.5)], [("x", 0.9), ("y", 0.88)]) for c in "ab"]
    acc, thr, mar, _, unknown_ok = _rank_thresholds(outcomes, unknown_share=0.5)
    assert acc == 1.0 and unknown_ok == 1.0
    assert thr <= 0.8 and 0.02 < mar <= 0.3


def test_the_expected_share_of_unknowns_weights_the_two_errors() -> None:
    # Known queries score 0.7 (one of the two answers wrong); unknowns score 0.75. Best
    # when unknowns are rare: accept at <= 0.7 (the right answer and every unknown);
    # when they are common: a threshold above 0.75 (every unknown rejected, no answer).
    outcomes = [
        _query("a", [("a", 0.7), ("b", 0.2)], [("u", 0.75), ("v", 0.2)]),
        _query("b", [("c", 0.7), ("b", 0.2)], [("u", 0.75), ("v", 0.2)]),
    ]
    rare = _rank_thresholds(outcomes, unknown_share=0.1)
    common = _rank_thresholds(outcomes, unknown_share=0.9)
    assert rare[0] == pytest.approx(0.9 * 0.5) and rare[1] <= 0.7
    assert rare[3:] == (0.5, 0.0)
    assert common[0] == pytest.approx(0.9) and common[1] > 0.75
    assert common[3:] == (0.0, 1.0)


@pytest.mark.parametrize(
    ("median", "word"),
    [(0.45, "good"), (0.31, "good"), (0.3, "fair"), (0.12, "fair"), (0.1, "poor"), (-0.2, "poor")],
)
def test_the_seeds_margin_guidance(median: float, word: str) -> None:
    assert margin_verdict(median).startswith(word)


def test_confusable_pairs_are_grouped_counted_and_worst_first() -> None:
    outcomes = [
        _query("Dreydl Gimmel", [("Dreydl Hay", 0.8), ("Dreydl Gimmel", 0.7)], []),  # wrong
        _query("Dreydl Gimmel", [("Dreydl Gimmel", 0.8), ("Dreydl Hay", 0.75)], []),
        _query("Iceland", [("Iceland", 0.9), ("Norway", 0.6)], []),
        _query("Orange", [("Orange", 0.9)], []),  # no other class: no pair
    ]
    pairs = _confusable(outcomes)
    assert [(p["label"], p["confused_with"]) for p in pairs] == [
        ("Dreydl Gimmel", "Dreydl Hay"),
        ("Iceland", "Norway"),
    ]
    assert pairs[0] == {
        "label": "Dreydl Gimmel",
        "confused_with": "Dreydl Hay",
        "queries": 2,
        "wrong_top1": 1,
        "mean_margin": pytest.approx(-0.025),
    }
    assert pairs[1]["wrong_top1"] == 0 and pairs[1]["mean_margin"] == pytest.approx(0.3)


def test_the_report_shows_margins_verdict_thresholds_and_pairs() -> None:
    pairs = [
        {
            "label": "Dreydl Gimmel",
            "confused_with": "Dreydl Hay",
            "queries": 2,
            "wrong_top1": 1,
            "mean_margin": -0.025,
        }
    ]
    report = VerifyReport(
        project="cards",
        model="m",
        references=3,
        classes=3,
        queries=18,
        top1_accuracy=0.944,
        margin_median=0.21,
        margin_p10=0.04,
        verdict=margin_verdict(0.21),
        confusable_pairs=pairs,
        unknown_score_median=0.4,
        unknown_score_p90=0.6,
        threshold=0.62,
        margin_threshold=0.05,
        known_accept_rate=0.9,
        unknown_reject_rate=0.85,
        expected_unknown_share=0.25,
        predicted_open_set_accuracy=0.8871,
        written=True,
        seconds=1.0,
        backgrounds="b",
    )
    text = format_report(report)
    assert "margin median / p10     0.210 / 0.040   -> fair" in text
    assert "score >= 0.62, margin >= 0.05  (written to the project)" in text
    assert "predicted open-set accuracy 0.887 (assuming 25% of live queries" in text
    assert "Dreydl Gimmel  vs  Dreydl Hay   -0.025, 1/2" in text
    assert report.to_json()["confusable_pairs"] == pairs
