"""The accuracy benchmark's numbers: AUROC, open-set accuracy, bootstrap intervals and
the list of mistakes it prints."""

from __future__ import annotations

import numpy as np

from tests.benchmarks.bench_accuracy import auroc, metrics, mistakes, table


def test_auroc_counts_pairs_and_ties() -> None:
    assert auroc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert auroc(np.array([0.1]), np.array([0.9])) == 0.0
    assert auroc(np.array([0.5, 0.9]), np.array([0.5])) == 0.75  # one tie, one win
    assert np.isnan(auroc(np.array([]), np.array([0.3])))


def outcomes(n_known: int, n_unknown: int, seed: int) -> tuple[list, list, list, list]:
    """Queries where known things score higher than unknown ones, with some overlap; 90 %
    of known ones are identified right, and decisions are made at score 0.5."""
    rng = np.random.default_rng(seed)
    labels = [f"c{i % 7}" for i in range(n_known)] + [None] * n_unknown
    top1 = [lab if rng.random() < 0.9 else "other" for lab in labels[:n_known]]
    top1 += ["c0"] * n_unknown
    scores = list(
        np.concatenate([rng.normal(0.7, 0.15, n_known), rng.normal(0.4, 0.15, n_unknown)])
    )
    accepted = [t if s >= 0.5 else None for t, s in zip(top1, scores, strict=True)]
    return labels, top1, scores, accepted


def test_metrics_match_a_count_by_hand() -> None:
    labels = ["a", "b", None, None]
    r = metrics(
        labels, ["a", "a", "a", "b"], [0.9, 0.5, 0.6, 0.3], ["a", None, "a", None], resamples=0
    )
    assert r["known_top1"] == 0.5
    assert r["open_set_accuracy"] == 0.5  # a accepted right, b's "unknown" wrong,
    assert r["known_accepted_correctly"] == 0.5  # the first unknown accepted, the second
    assert r["unknown_rejected"] == 0.5  # rejected
    assert r["auroc"] == 0.75
    assert "ci" not in r


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_queries() -> None:
    small = metrics(*outcomes(90, 30, seed=1))
    large = metrics(*outcomes(1800, 600, seed=1))
    for r in (small, large):
        for key, (lo, hi) in r["ci"].items():
            assert lo <= r[key] <= hi, key
    width = {
        r_id: r["ci"]["open_set_accuracy"][1] - r["ci"]["open_set_accuracy"][0]
        for r_id, r in (("small", small), ("large", large))
    }
    assert width["large"] < width["small"] / 2  # sqrt(20) ~ 4.5 times more queries
    assert metrics(*outcomes(90, 30, seed=1)) == small  # seeded: the same run, same interval


def test_mistakes_list_wrong_accepts_highest_first_and_the_table_names_them() -> None:
    queries = [
        {"id": "q1", "label": "Mali", "known": False},
        {"id": "q2", "label": "Chad", "known": True},
        {"id": "q3", "label": "Peru", "known": True},
        {"id": "q4", "label": "Iraq", "known": False},
    ]
    rows = {
        "accepted": ["Belgium", "Romania", "Peru", None],
        "score": [0.7, 0.9, 0.8, 0.6],
        "top1": ["Belgium", "Romania", "Peru", "Iran"],
    }
    wrong = mistakes(queries, rows)
    assert [(m["is"], m["taken_for"], m["known"]) for m in wrong] == [
        ("Chad", "Romania", True),
        ("Mali", "Belgium", False),
    ]
    labels = [None, "Chad", "Peru", None]
    r = metrics(labels, rows["top1"], rows["score"], rows["accepted"], resamples=50)
    res = {
        "views": 6,
        "rerank": True,
        "crop": {m: r for m in ("seed", "identify", "identify_global_only")},
        "verify": {
            "threshold": 0.5,
            "margin_threshold": 0.1,
            "predicted_open_set_accuracy": 0.9,
            "top1_accuracy": 1.0,
            "margin_median": 0.4,
        },
    }
    res["crop"]["identify_mistakes"] = wrong
    res["frame"] = {**res["crop"], "identify_mistakes": []}
    text = table(res)
    assert "1 unknown things accepted, 1 known things taken for another" in text
    assert "Chad as Romania (0.90), Mali as Belgium (0.70)" in text
    assert f"{r['open_set_accuracy']:.3f} [" in text
