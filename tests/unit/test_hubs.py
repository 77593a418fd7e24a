"""The hub check: a reference whose matches do not look alike, against typical ones."""

from __future__ import annotations

import numpy as np

from server.engine import hubs
from server.engine.hubs import find_hubs

DIM = 64


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _views(rng: np.random.Generator, n: int, spread: float = 0.4) -> np.ndarray:
    """``n`` views of one thing: one direction, a little noise each."""
    centre = rng.normal(size=DIM)
    return _unit(centre + spread * rng.normal(size=(n, DIM)) * np.linalg.norm(centre) / 8)


def _stream(rng: np.random.Generator, hub_matches: int) -> tuple[list[str | None], np.ndarray]:
    """Eight ordinary classes seen 6 times each, some unknowns, and ``hub`` accepted for
    ``hub_matches`` things that share only a small pull towards it."""
    labels: list[str | None] = []
    rows = []
    for c in range(8):
        labels += [f"class{c}"] * 6
        rows.append(_views(rng, 6))
    labels += [None] * 10
    rows.append(_unit(rng.normal(size=(10, DIM))))
    pull = rng.normal(size=DIM)
    labels += ["hub"] * hub_matches
    rows.append(_unit(rng.normal(size=(hub_matches, DIM)) + 0.3 * _unit(pull)))
    return labels, np.vstack(rows)


def test_a_reference_taken_for_unlike_things_is_flagged_and_views_of_one_thing_are_not() -> None:
    labels, vectors = _stream(np.random.default_rng(0), hub_matches=8)
    found = find_hubs(labels, vectors)
    assert [h.label for h in found] == ["hub"]
    assert found[0].matches == 8
    assert found[0].agreement < found[0].typical
    assert found[0].to_json()["label"] == "hub"


def test_a_popular_thing_seen_many_times_is_not_a_hub() -> None:
    rng = np.random.default_rng(1)
    labels, vectors = _stream(rng, hub_matches=0)
    labels += ["popular"] * 200
    vectors = np.vstack([vectors, _views(rng, 200)])
    assert find_hubs(labels, vectors) == []


def test_too_few_matches_or_too_few_references_decide_nothing() -> None:
    rng = np.random.default_rng(2)
    labels, vectors = _stream(rng, hub_matches=hubs.MIN_MATCHES - 1)
    assert "hub" not in {h.label for h in find_hubs(labels, vectors)}
    # Only a few references with three matches or more: nothing is typical yet.
    few = [label for label in labels if label in {None, "class0", "class1", "hub"}]
    keep = [i for i, label in enumerate(labels) if label in {None, "class0", "class1", "hub"}]
    assert find_hubs(few, vectors[keep]) == []
    assert find_hubs([], np.zeros((0, DIM))) == []


def test_the_fast_jackknife_equals_leaving_each_match_out() -> None:
    x = _unit(np.random.default_rng(3).normal(size=(9, DIM)))
    loo = np.array([hubs._agreement(np.delete(x, j, axis=0)) for j in range(len(x))])
    slow = float(np.sqrt((len(x) - 1) / len(x) * np.sum((loo - loo.mean()) ** 2)))
    assert abs(hubs._jackknife_se(x) - slow) < 1e-9
