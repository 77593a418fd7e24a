"""The loop's rules: what a decision means, what annotations add up to over time, which
accepted answers are audited, and old decisions carried into annotations."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

from server.engine.catalog.store import MIGRATIONS, Store
from server.engine.errors import IdentifyError
from server.engine.loop.annotations import Prediction, author_of, check, derive, label_matches
from server.engine.loop.audit import Auditor
from server.engine.loop.estimate import Judged, Stratum, disagreement, estimate, recommend
from server.engine.loop.stats import Annotated, by_label, drift, rates, series, watch

INDEXED = {"seven of clubs", "eight of clubs"}


def answered(label: str | None) -> Prediction:
    return Prediction(label, lambda name: name in INDEXED)


@pytest.mark.parametrize(
    ("given", "label", "nothing", "expected"),
    [
        ("seven of clubs", "seven of clubs", False, "confirmed"),
        ("seven of clubs", "eight of clubs", False, "corrected"),
        ("seven of clubs", "a new card", False, "corrected"),
        ("seven of clubs", None, False, "corrected"),  # it is none of the known ones
        (None, None, False, "confirmed"),  # unknown, and rightly so
        (None, "a new card", False, "confirmed"),  # rightly unknown, now named
        (None, "eight of clubs", False, "corrected"),  # it was indexed: a mistake
        (None, None, True, "false_positive"),
        ("seven of clubs", None, True, "false_positive"),
    ],
)
def test_a_gesture_means_what_the_answer_makes_it(
    given: str | None, label: str | None, nothing: bool, expected: str
) -> None:
    assert derive(answered(given), label, nothing) == expected


def test_a_type_given_must_fit_the_answer() -> None:
    assert check("confirmed", answered("seven of clubs"), None, None) == "seven of clubs"
    assert check("corrected", answered(None), "eight of clubs", None) == "eight of clubs"
    with pytest.raises(IdentifyError, match="that is corrected, not confirmed"):
        check("confirmed", answered("seven of clubs"), "eight of clubs", None)
    with pytest.raises(IdentifyError, match="with no label that is confirmed"):
        check("corrected", answered(None), None, None)
    with pytest.raises(IdentifyError, match="no label"):
        check("false_positive", answered(None), "x", None)
    with pytest.raises(IdentifyError, match="box"):
        check("missed", answered(None), "x", None)
    assert check("missed", answered(None), "x", [0, 0, 1, 1]) == "x"


def test_authors_and_label_paths() -> None:
    assert author_of("local", None) == "local"
    assert author_of("token", " bob ") == "token:bob"
    assert author_of("local", "\x1b[31m") == "local:[31m"
    assert label_matches("Cards > Yu-Gi-Oh > Dark Magician", "Cards > Yu-Gi-Oh")
    assert not label_matches("Cards > Yu-Gi-Oh2", "Cards > Yu-Gi-Oh")
    assert not label_matches(None, "Cards")


NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)  # a Friday


def at(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


def test_series_counts_days_and_weeks_with_empty_ones_included() -> None:
    rows = [
        Annotated("confirmed", at(0), "a"),
        Annotated("corrected", at(0.4), "a"),
        Annotated("missed", at(3), None),  # Tuesday of this week
        Annotated("confirmed", at(5), "b"),  # Sunday of last week
        Annotated("confirmed", at(200), "b"),  # out of both series
    ]
    days = series(rows, NOW, "day")
    assert len(days) == 30 and days[-1][0] == "2026-12-04" and days[-1][1]["confirmed"] == 1
    assert days[-1][1]["corrected"] == 1 and days[-4][1]["missed"] == 1
    assert sum(sum(c.values()) for _, c in days) == 4
    weeks = series(rows, NOW, "week")
    assert len(weeks) == 12 and weeks[-1][0] == "2026-W49"
    assert sum(weeks[-1][1].values()) == 3 and weeks[-2][1] == Counter({"confirmed": 1})


def test_drift_compares_the_last_seven_days_with_the_seven_before() -> None:
    rows = [Annotated("confirmed", at(d), None) for d in (0.5, 1, 2, 3)]
    rows += [Annotated("corrected", at(6.9), None)]
    rows += [Annotated("confirmed", at(8), None), Annotated("corrected", at(9), None)]
    rows += [Annotated("corrected", at(15), None)]  # older than both
    this, last = drift(rows, NOW)
    assert this == Counter({"confirmed": 4, "corrected": 1})
    assert last == Counter({"confirmed": 1, "corrected": 1})
    assert rates(this)["confirmed"] == 0.8 and rates(last)["confirmed"] == 0.5
    assert rates(Counter())["confirmed"] is None


def test_levels_to_watch() -> None:
    assert watch(0.81, "confirmed") == "ok" and watch(0.8, "confirmed") == "watch"
    assert watch(0.15, "corrected") == "ok" and watch(0.16, "corrected") == "watch"
    assert watch(0.11, "false_positive") == "watch" and watch(0.04, "missed") == "ok"
    assert watch(None, "missed") is None


def test_counts_by_label_at_any_level() -> None:
    rows = [
        Annotated("confirmed", NOW, "Cards > Yu-Gi-Oh > Dark Magician"),
        Annotated("corrected", NOW, "Cards > Yu-Gi-Oh > Blue-Eyes"),
        Annotated("confirmed", NOW, "Cards > Pokemon > Pikachu"),
        Annotated("false_positive", NOW, None),
    ]
    assert by_label(rows, 1) == {
        "Cards": Counter({"confirmed": 2, "corrected": 1}),
        "(none)": Counter({"false_positive": 1}),
    }
    assert set(by_label(rows, 2)) == {"Cards > Yu-Gi-Oh", "Cards > Pokemon", "(none)"}
    assert len(by_label(rows)) == 4


@pytest.mark.parametrize("share", [0.02, 0.1, 0.5, 1.0, 0.0])
def test_the_audit_takes_an_exact_share(share: float) -> None:
    auditor = Auditor(share, margin=0.0)
    picked = [auditor.pick(margin=0.5, margin_threshold=0.05) for _ in range(1000)]
    assert picked.count("audit") == round(1000 * share)
    assert "low_confidence" not in picked


def test_thin_margins_are_all_taken() -> None:
    default = Auditor(0.0, margin=None)  # twice the margin threshold
    assert default.pick(0.09, 0.05) == "low_confidence"
    assert default.pick(0.11, 0.05) is None
    assert Auditor(0.0, margin=0.2).pick(0.15, 0.05) == "low_confidence"


def test_decisions_made_before_annotations_become_annotations(tmp_path: Path) -> None:
    """A database of the schema before annotations, with a label of a class that was
    indexed, a new class, and an old "none of these" (then false_positive)."""
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(sqlite3.connect(path))
    for step in MIGRATIONS[:5]:
        step(db)
    db.execute(f"PRAGMA user_version = {5}")
    ts, later = "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"
    db.execute(
        "insert into images (id, kind, label, status, created_at) values "
        "(1, 'reference', 'Brazil', 'active', ?), (2, 'crop', null, 'active', ?)",
        [ts, later],
    )
    for item, status, label in (
        (1, "confirmed", "Brazil"),
        (2, "corrected", "Germany"),
        (3, "false_positive", None),
        (4, "skipped", None),
    ):
        db.execute(
            "insert into review (id, image_id, reason, status, label, score, margin, "
            "resolved_label, created_at, resolved_at) values (?, 2, 'below_threshold', ?, "
            "'Brazil', 0.5, 0.1, ?, ?, ?)",
            [item, status, label, later, later],
        )
    db.conn.commit()
    db.conn.close()
    store = Store(path)
    try:
        rows, total = store.annotations({})
        assert total == 3
        assert {r.review_id: r.type for r in rows} == {
            1: "corrected",  # Brazil was indexed when it was answered unknown
            2: "confirmed",  # a new class: unknown was right
            3: "confirmed",  # "none of these": unknown was right
        }
        assert store.review_item(1).status == "corrected"
        assert store.review_item(4).status == "skipped"
        assert store.schema_version == len(MIGRATIONS)
    finally:
        store.close()


def test_the_reviewed_estimate_weighs_each_stratum_by_its_share() -> None:
    """900 accepted answers (100 of them thin-margin, all reviewed; 16 of the other 800
    audited), 100 rejected (50 reviewed)."""
    found = estimate(
        [
            Stratum("unknown answers", 100, 50, 40),  # 0.8 right
            Stratum("thin-margin accepts", 100, 100, 60),  # 0.6, a census
            Stratum("other accepts", 800, 16, 15),  # 0.9375
        ]
    )
    assert found.accuracy == pytest.approx(0.1 * 0.8 + 0.1 * 0.6 + 0.8 * 0.9375)
    assert found.reviews == 166 and found.missing == ()
    assert found.low is not None and found.high is not None
    assert found.low < found.accuracy < found.high
    # The census adds no spread; the small audit dominates it.
    sampled = 0.8**2 * 0.9375 * 0.0625 / 16 * (800 - 16) / 799 + 0.1**2 * 0.16 / 50 * 50 / 99
    assert found.high - found.accuracy == pytest.approx(1.96 * sampled**0.5, rel=1e-6)


def test_the_estimate_waits_for_every_kind_of_answer() -> None:
    found = estimate([Stratum("unknown answers", 10, 5, 5), Stratum("other accepts", 90, 0, 0)])
    assert found.accuracy is None and found.missing == ("other accepts",)
    # A kind with no answers at all needs no review.
    assert estimate([Stratum("a", 10, 5, 5), Stratum("b", 0, 0, 0)]).accuracy == 1.0


def test_a_plain_warning_when_reviews_and_verify_disagree() -> None:
    far = estimate([Stratum("all", 1000, 200, 48)])  # 0.24 right
    warning = disagreement(far, 0.88)
    assert warning is not None and "0.24" in warning and "0.88" in warning
    near = estimate([Stratum("all", 1000, 200, 170)])  # 0.85
    assert disagreement(near, 0.88) is None
    assert disagreement(estimate([Stratum("all", 10, 0, 0)]), 0.88) is None
    assert "do not look like the synthetic photos" in warning
    # Few reviews: an interval wide enough to reach the prediction says it is not sure.
    unsure = disagreement(estimate([Stratum("all", 1000, 3, 2)]), 0.9)
    assert unsure is not None and "not sure yet" in unsure and "3 reviews" in unsure


def judged(n: int, score: float, right_class: bool, stratum: str = "unknown answers") -> list:
    """``n`` judged answers at ``score``: of an indexed class their top candidate names
    (``right_class``), or of a class nobody indexed."""
    return [
        Judged(stratum, score, 0.1, "Cat", "Cat" if right_class else None, right_class)
        for _ in range(n)
    ]


def test_reviews_recommend_the_threshold_that_separates_right_from_wrong() -> None:
    # Unknown things score about 0.6, known ones 0.75: the thresholds in force (0.8)
    # reject both, so reviewers found every known one wrongly rejected.
    answers = judged(20, 0.6, False) + judged(20, 0.75, True)
    found = recommend(answers, {"unknown answers": 40}, (0.8, 0.02))
    assert found is not None
    assert 0.6 < found.threshold <= 0.75 and found.margin <= 0.1
    assert found.estimate.accuracy == 1.0 and found.current.accuracy == 0.5
    assert found.estimate.reviews == 40
    # Nothing to gain: the thresholds in force are kept (the nearest best pair).
    kept = recommend(answers, {"unknown answers": 40}, (0.7, 0.02))
    assert kept is not None and (kept.threshold, kept.margin) == (0.7, 0.02)


def test_a_recommendation_weighs_strata_and_waits_for_reviews() -> None:
    answers = judged(20, 0.6, False) + judged(9, 0.75, True)
    assert recommend(answers, {"unknown answers": 29}, (0.8, 0.02)) is None  # too few
    # Audited accepts that were right, standing for 900 answers, against 100 unknowns:
    # a threshold that rejects them would cost far more than it gains.
    audits = judged(15, 0.9, True, "other accepts (audits)")
    rejected = judged(15, 0.95, False)
    found = recommend(
        audits + rejected, {"unknown answers": 100, "other accepts (audits)": 900}, (0.85, 0.02)
    )
    assert found is not None and found.threshold <= 0.9
    assert found.estimate.accuracy == pytest.approx(0.9)
    missing = recommend(judged(40, 0.9, True), {"unknown answers": 5, "thin": 3}, (0.8, 0.0))
    assert missing is None  # a stratum with answers and no review


def test_a_gain_within_the_noise_keeps_the_thresholds_in_force() -> None:
    # One answer of thirty would come out right at a lower threshold: the best pair
    # claims 3 points, which thirty reviews cannot tell from chance.
    answers = judged(29, 0.6, False) + judged(1, 0.75, True)
    found = recommend(answers, {"unknown answers": 30}, (0.8, 0.02))
    assert found is not None
    assert (found.threshold, found.margin) == (0.8, 0.02)
    assert found.gain == pytest.approx(1 / 30) and found.gain_low < 0
    assert found.estimate.accuracy == found.current.accuracy
