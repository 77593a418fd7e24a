"""The numbers ``identify evaluate`` reports, on pictures worked out by hand."""

from __future__ import annotations

import pytest

from server.engine.training.evaluate import Answer, Seen, iou, match, score, score_answers

A = (0, 0, 10, 10)
B = (20, 0, 30, 10)


def test_iou_and_matching_take_the_best_score_first_and_each_object_once() -> None:
    assert iou(A, A) == 1.0 and iou(A, B) == 0.0
    assert iou(A, (5, 0, 15, 10)) == pytest.approx(50 / 150)
    seen = [Seen((0, 0, 10, 9), 0.4, "x"), Seen((0, 0, 10, 10), 0.9, "x"), Seen(B, 0.8, None)]
    # The better-scored twin takes the object; the other matches nothing.
    assert match([("x", A), ("y", B)], seen) == [None, 0, 1]


def test_a_version_is_scored_per_object_and_per_picture() -> None:
    truths = [[("cat", A), ("dog", B)], [("fox", A)], []]
    seens = [
        # cat found and named, dog found but said unknown (dog is indexed: wrong).
        [Seen(A, 0.9, "cat"), Seen(B, 0.8, None)],
        # fox missed; a box elsewhere named "cat": a false positive and a false accept.
        [Seen(B, 0.7, "cat")],
        # A background picture: a detection said unknown is a false positive only.
        [Seen(A, 0.2, None)],
    ]
    s = score(truths, seens, known={"cat", "dog"})
    assert (s.pictures, s.objects, s.detections) == (3, 3, 4)
    assert s.recall == pytest.approx(2 / 3)
    assert s.per_class_recall == {"cat": 1.0, "dog": 1.0, "fox": 0.0}
    assert s.false_positives_per_picture == pytest.approx(2 / 3)
    # Right: cat only (fox is unknown to the index but was missed). Out of 3 objects and
    # 1 false accept.
    assert s.open_set_accuracy == pytest.approx(1 / 4)
    # Two hits ranked first, then two misses: precision 1 up to recall 2/3.
    assert s.map50 == pytest.approx(2 / 3, abs=0.01)


def test_an_unindexed_thing_said_unknown_is_right_and_nothing_found_scores_zero() -> None:
    s = score([[("fox", A)]], [[Seen(A, 0.5, None)]], known={"cat"})
    assert (
        s.open_set_accuracy == 1.0 and s.recall == 1.0 and s.map50 == pytest.approx(1.0, abs=0.01)
    )
    empty = score([[("fox", A)]], [[]], known={"cat"})
    assert (empty.recall, empty.map50, empty.open_set_accuracy) == (0.0, 0.0, 0.0)


def test_an_identification_version_is_scored_per_crop_against_what_the_index_holds() -> None:
    answers = [
        Answer("cat", "cat", "cat"),  # known, named: right
        Answer("cat", "cat", None),  # known, best candidate right but not accepted: wrong
        Answer("dog", "cat", "cat"),  # known, taken for another: wrong
        Answer(None, "cat", None),  # a false positive (or a class not indexed) rejected
        Answer(None, "dog", "dog"),  # ... or accepted: wrong
    ]
    s = score_answers(answers, 0.7, 0.05)
    assert (s.objects, s.known) == (5, 3)
    assert s.top1 == pytest.approx(2 / 3)
    assert s.known_accepted_right == pytest.approx(1 / 3)
    assert s.unknown_rejected == pytest.approx(1 / 2)
    assert s.open_set_accuracy == pytest.approx(2 / 5)
    assert s.per_class_recall == {"cat": 0.5, "dog": 0.0}
    assert s.to_json()["threshold"] == 0.7
