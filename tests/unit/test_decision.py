"""The decision: per-class aggregation, accept/unknown, and threshold precedence."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from server.engine.decide.decision import (
    Candidate,
    Thresholds,
    aggregate,
    decide,
    resolve_thresholds,
)
from server.engine.project.config import (
    Calibration,
    ClassThreshold,
    ProjectConfig,
    ReferenceSource,
    Taxonomy,
)
from server.engine.vision.embedders.base import ModelSpec

SPEC = ModelSpec(model_id="test/model", dim=8, default_threshold=0.5, default_margin=0.03)


def _cand(label: str, score: float, ref: int = 0) -> Candidate:
    return Candidate(label=label, score=score, reference_id=ref, cosine=score)


def _cfg(
    *, calibration: Calibration | None = None, taxonomies: tuple[Taxonomy, ...] = ()
) -> ProjectConfig:
    refs = [ReferenceSource(path=Path("refs"))]
    refs += [ReferenceSource(path=Path(t.name), taxonomy=t.name) for t in taxonomies]
    return ProjectConfig(references=tuple(refs), taxonomies=taxonomies, calibration=calibration)


# --- aggregate -------------------------------------------------------------------------


def test_aggregate_keeps_the_best_reference_per_class() -> None:
    keys = np.array([11, 12, 21, 13])
    sims = np.array([0.70, 0.90, 0.80, 0.60], np.float32)
    labels = {11: "A", 12: "A", 13: "A", 21: "B"}
    ranked = aggregate(keys, sims, labels)
    assert [c.label for c in ranked] == ["A", "B"]
    assert ranked[0].reference_id == 12
    assert ranked[0].score == pytest.approx(0.9)
    assert ranked[0].cosine == pytest.approx(0.9)
    assert ranked[1].reference_id == 21


def test_aggregate_skips_missing_neighbours_and_unknown_ids() -> None:
    keys = np.array([1, -1, 99, 2])
    sims = np.array([0.5, -np.inf, 0.99, np.nan], np.float32)
    ranked = aggregate(keys, sims, {1: "A", 2: "B"})  # 99 was removed meanwhile
    assert [(c.label, c.reference_id) for c in ranked] == [("A", 1)]


def test_aggregate_of_nothing_is_empty() -> None:
    assert aggregate(np.array([-1]), np.array([-np.inf]), {}) == []


# --- decide ----------------------------------------------------------------------------

DEFAULT = Thresholds(default=(0.5, 0.25))


def test_accepts_when_score_and_margin_reach_their_thresholds() -> None:
    d = decide([_cand("B", 0.25, 2), _cand("A", 0.5, 1)], DEFAULT, {})
    assert d.matched and d.reason == "matched"
    assert d.label == "A" and d.reference_id == 1
    assert d.score == 0.5 and d.margin == 0.25  # both exactly at the thresholds
    assert [c.label for c in d.candidates] == ["A", "B"]
    assert (d.threshold, d.margin_threshold) == (0.5, 0.25)


def test_below_threshold_is_unknown() -> None:
    d = decide([_cand("A", 0.49, 1)], DEFAULT, {})
    assert not d.matched and d.reason == "below_threshold"
    assert d.label is None and d.reference_id is None
    assert d.score == pytest.approx(0.49)
    assert [c.label for c in d.candidates] == ["A"]  # the ranking is still reported


def test_low_margin_is_unknown() -> None:
    d = decide([_cand("A", 0.9), _cand("B", 0.8)], DEFAULT, {})
    assert not d.matched and d.reason == "low_margin"
    assert d.label is None
    assert d.margin == pytest.approx(0.1)


def test_single_candidate_margin_is_its_score() -> None:
    d = decide([_cand("A", 0.6)], DEFAULT, {})
    assert d.margin == pytest.approx(0.6) and d.matched


def test_negative_runner_up_does_not_inflate_the_margin() -> None:
    d = decide([_cand("A", 0.6), _cand("B", -0.4)], DEFAULT, {})
    assert d.margin == pytest.approx(0.6)


def test_empty_ranking_is_empty_index() -> None:
    d = decide([], DEFAULT, {})
    assert d.reason == "empty_index"
    assert d.label is None and not d.matched and d.candidates == ()
    assert (d.threshold, d.margin_threshold) == (0.5, 0.25)


def test_candidates_are_capped_at_top_n() -> None:
    cands = [_cand(f"C{i}", 0.9 - i * 0.05) for i in range(10)]
    assert len(decide(cands, DEFAULT, {}, top_n=3).candidates) == 3


def test_decision_json_shape() -> None:
    d = decide([_cand("A", 0.87654, 7)], DEFAULT, {})
    out = d.to_json(bbox=(1, 2, 3, 4))
    assert out["bbox"] == [1, 2, 3, 4]
    assert out["label"] == "A" and out["score"] == 0.8765 and out["matched"] is True
    assert out["candidates"][0]["reference_id"] == 7


# --- threshold precedence --------------------------------------------------------------

CARDS = Taxonomy(
    name="cards",
    threshold=0.7,
    margin=0.1,
    classes=MappingProxyType(
        {
            "Dark Magician": ClassThreshold(threshold=0.9),
            "Kuriboh": ClassThreshold(margin=0.4),
        }
    ),
)
LOOSE = Taxonomy(name="loose", threshold=0.3)  # margin left to calibration / default


def test_model_default_applies_without_calibration_or_taxonomy() -> None:
    t = resolve_thresholds(_cfg(), SPEC)
    assert not t.calibrated
    assert t.for_class("Anything", "default") == (0.5, 0.03)


def test_calibration_for_this_model_beats_the_model_default() -> None:
    t = resolve_thresholds(_cfg(calibration=Calibration(0.62, 0.07, model="test/model")), SPEC)
    assert t.calibrated
    assert t.for_class("Anything", "default") == (0.62, 0.07)


def test_calibration_for_another_model_is_ignored() -> None:
    t = resolve_thresholds(_cfg(calibration=Calibration(0.62, 0.07, model="other/model")), SPEC)
    assert not t.calibrated
    assert t.for_class("Anything", "default") == (0.5, 0.03)


def test_taxonomy_beats_calibration_and_inherits_what_it_leaves_unset() -> None:
    cfg = _cfg(calibration=Calibration(0.62, 0.07, model="test/model"), taxonomies=(CARDS, LOOSE))
    t = resolve_thresholds(cfg, SPEC)
    assert t.for_class("Blue-Eyes", "cards") == (0.7, 0.1)
    assert t.for_class("Coin", "loose") == (0.3, 0.07)  # margin from calibration
    assert t.for_class("Other", "default") == (0.62, 0.07)


def test_taxonomy_unset_values_fall_back_to_the_model_default_when_uncalibrated() -> None:
    t = resolve_thresholds(_cfg(taxonomies=(LOOSE,)), SPEC)
    assert t.for_class("Coin", "loose") == (0.3, 0.03)


def test_class_override_beats_taxonomy_and_inherits_the_rest() -> None:
    cfg = _cfg(calibration=Calibration(0.62, 0.07, model="test/model"), taxonomies=(CARDS,))
    t = resolve_thresholds(cfg, SPEC)
    assert t.for_class("Dark Magician", "cards") == (0.9, 0.1)
    assert t.for_class("Kuriboh", "cards") == (0.7, 0.4)


def test_decide_uses_the_thresholds_of_the_top_class() -> None:
    t = resolve_thresholds(_cfg(taxonomies=(CARDS,)), SPEC)
    taxonomy_of = {"Dark Magician": "cards", "Blue-Eyes": "cards"}
    # 0.85 passes the taxonomy's 0.7 but not Dark Magician's own 0.9.
    d = decide([_cand("Dark Magician", 0.85)], t, taxonomy_of)
    assert d.reason == "below_threshold" and d.threshold == 0.9
    d = decide([_cand("Blue-Eyes", 0.85)], t, taxonomy_of)
    assert d.matched and d.threshold == 0.7
    # A class outside any declared taxonomy uses the model default.
    d = decide([_cand("Stray", 0.55)], t, {})
    assert d.matched and d.threshold == 0.5


def test_whole_pictures_use_their_own_calibration_and_explicit_values_apply_to_both() -> None:
    cal = Calibration(0.62, 0.07, model="test/model", picture_threshold=0.75, picture_margin=0.02)
    t = resolve_thresholds(_cfg(calibration=cal, taxonomies=(CARDS, LOOSE)), SPEC)
    assert t.picture == (0.75, 0.02)
    assert t.for_class("Other", "default") == (0.62, 0.07)
    assert t.for_class("Other", "default", picture=True) == (0.75, 0.02)
    # Explicit taxonomy/class values are the user's: the same in crops and pictures.
    assert t.for_class("Blue-Eyes", "cards", picture=True) == (0.7, 0.1)
    assert t.for_class("Coin", "loose", picture=True) == (0.3, 0.02)  # margin inherited
    assert t.for_taxonomy("loose") == (0.3, 0.07)
    d = decide([_cand("Other", 0.7)], t, {})
    assert d.matched and d.threshold == 0.62
    d = decide([_cand("Other", 0.7)], t, {}, picture=True)
    assert d.reason == "below_threshold" and d.threshold == 0.75


def test_without_a_picture_calibration_pictures_use_the_crops_thresholds() -> None:
    t = resolve_thresholds(_cfg(calibration=Calibration(0.62, 0.07, model="test/model")), SPEC)
    assert t.picture is None
    assert t.for_class("Other", "default", picture=True) == (0.62, 0.07)
    other = Calibration(0.62, 0.07, model="other/model", picture_threshold=0.9)
    assert resolve_thresholds(_cfg(calibration=other), SPEC).picture is None


def test_a_project_that_does_not_locate_decides_pictures_as_crops() -> None:
    from dataclasses import replace

    from server.engine.project.config import LocateConfig

    cal = Calibration(0.62, 0.07, model="test/model", picture_threshold=0.75)
    cfg = replace(_cfg(calibration=cal), locate=LocateConfig(enabled=False))
    t = resolve_thresholds(cfg, SPEC)
    assert t.picture is None and t.for_class("Other", "default", picture=True) == (0.62, 0.07)
