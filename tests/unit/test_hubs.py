"""The hub check: a reference whose matches do not look alike, against typical ones."""

from __future__ import annotations

import numpy as np

from server.engine.decide import hubs
from server.engine.decide.hubs import find_hubs

DIM = 64
HUB = 99


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _views(
    rng: np.random.Generator, n: int, centre: np.ndarray | None = None, noise: float = 0.12
) -> np.ndarray:
    """``n`` views of one thing: one direction, some noise each (pairwise cosine about
    0.5, as camera views of one thing have in the benchmark)."""
    centre = _unit(rng.normal(size=DIM)) if centre is None else centre
    return _unit(centre + noise * rng.normal(size=(n, DIM)))


def _stream(
    rng: np.random.Generator, hub_matches: int, pull: float = 0.3, references: int = 8
) -> tuple[list[int | None], np.ndarray]:
    """``references`` ordinary references that won 6 views of their thing each, some
    unknowns, and reference ``HUB`` that won ``hub_matches`` things sharing only a pull
    of ``pull`` towards it."""
    winners: list[int | None] = []
    rows = []
    for ref in range(references):
        winners += [ref] * 6
        rows.append(_views(rng, 6))
    winners += [None] * 10
    rows.append(_unit(rng.normal(size=(10, DIM))))
    towards = _unit(rng.normal(size=DIM))
    winners += [HUB] * hub_matches
    rows.append(_unit(_unit(rng.normal(size=(hub_matches, DIM))) + pull * towards))
    return winners, np.vstack(rows)


SEEDS = range(100)
"""Streams per rate: the check is statistical, so it is tested by its rates."""


def test_a_reference_won_by_unlike_things_is_flagged_and_views_of_one_thing_are_not() -> None:
    caught = ordinary = 0
    for seed in SEEDS:
        found = find_hubs(*_stream(np.random.default_rng(seed), hub_matches=8))
        caught += HUB in {h.reference_id for h in found}
        ordinary += sum(h.reference_id != HUB for h in found)
        assert all(h.agreement < h.typical and h.matches >= hubs.MIN_MATCHES for h in found)
    assert caught >= 0.95 * len(SEEDS)
    assert ordinary <= 0.01 * 8 * len(SEEDS)  # of 8 ordinary references per stream


def test_matches_about_as_alike_as_views_of_one_thing_are_not_flagged() -> None:
    # The same eight matches, sharing most of their direction: as alike as the
    # ordinary references' views.
    flagged = sum(
        HUB in {h.reference_id for h in find_hubs(*_stream(np.random.default_rng(s), 8, 12.0))}
        for s in SEEDS
    )
    assert flagged <= 0.01 * len(SEEDS)


def test_a_popular_thing_seen_many_times_is_not_a_hub() -> None:
    flagged = 0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        winners, vectors = _stream(rng, hub_matches=0)
        # Reference 7 won 200 more views of its own thing (newest first, as the server
        # gives them).
        centre = _unit(vectors[winners.index(7) : winners.index(7) + 6].mean(axis=0))
        winners = [7] * 200 + winners
        vectors = np.vstack([_views(rng, 200, centre), vectors])
        flagged += 7 in {h.reference_id for h in find_hubs(winners, vectors)}
    assert flagged <= 0.01 * len(SEEDS)


def test_too_few_matches_or_too_few_references_decide_nothing() -> None:
    rng = np.random.default_rng(0)
    winners, vectors = _stream(rng, hub_matches=hubs.MIN_MATCHES - 1)
    assert find_hubs(winners, vectors) == []
    # What is typical needs MIN_JUDGED references with three matches or more.
    enough = _stream(np.random.default_rng(0), 8, references=hubs.MIN_JUDGED - 1)
    assert [h.reference_id for h in find_hubs(*enough)] == [HUB]
    short = _stream(np.random.default_rng(0), 8, references=hubs.MIN_JUDGED - 2)
    assert find_hubs(*short) == []
    assert find_hubs([], np.zeros((0, DIM))) == []


def test_empty_vectors_are_left_out() -> None:
    winners, vectors = _stream(np.random.default_rng(0), hub_matches=8)
    # Empty embeddings won by one reference neither count as matches nor agree.
    winners += [3] * 4
    vectors = np.vstack([vectors, np.zeros((4, DIM))])
    found = find_hubs(winners, vectors)
    assert [h.reference_id for h in found] == [HUB]


def test_the_fast_jackknife_equals_leaving_each_match_out() -> None:
    x = _unit(np.random.default_rng(0).normal(size=(9, DIM)))
    loo = np.array([hubs._agreement(np.delete(x, j, axis=0)) for j in range(len(x))])
    slow = float(np.sqrt((len(x) - 1) / len(x) * np.sum((loo - loo.mean()) ** 2)))
    assert abs(hubs._jackknife_se(x) - slow) < 1e-9
