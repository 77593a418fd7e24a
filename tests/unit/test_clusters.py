"""Grouping unknowns: alike things grouped, structureless ones not, too few said."""

from __future__ import annotations

import numpy as np

from server.engine.loop.clusters import compute, group, silhouette


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_alike_things_are_grouped_and_scattered_ones_left_out() -> None:
    rng = np.random.default_rng(0)
    centres = unit(rng.normal(size=(3, 512)))
    truth = np.repeat(np.arange(3), 20)
    x = unit(
        np.vstack([centres[truth] + rng.normal(size=(60, 512)) * 0.02, rng.normal(size=(15, 512))])
    )
    labels = group(x, 5).labels
    for k in range(3):
        mine = labels[:60][truth == k]
        assert len(set(mine.tolist())) == 1 and mine[0] >= 0
    assert len({int(v) for v in labels[:60]}) == 3 and (labels[60:] == -1).all()
    done = compute(list(range(100, 175)), x, 5)
    assert len(done.clusters) == 3
    for c in done.clusters:
        assert 100 <= c.medoid_item_id < 160 and c.mean_similarity > 0.75


def test_structureless_directions_make_no_group_and_too_few_nothing() -> None:
    rng = np.random.default_rng(1)
    for n in (8, 40, 300):
        assert (group(unit(rng.normal(size=(n, 512))), 5).labels == -1).all()
    assert group(unit(rng.normal(size=(3, 512))), 5).labels.tolist() == [-1, -1, -1]


def test_one_new_thing_filling_the_queue_is_still_shown() -> None:
    rng = np.random.default_rng(2)
    centre = unit(rng.normal(size=(1, 512)))
    x = unit(np.vstack([centre + rng.normal(size=(12, 512)) * 0.02, rng.normal(size=(2, 512))]))
    labels = group(x, 5).labels
    assert (labels[:12] >= 0).sum() >= 10 and (labels[12:] == -1).all()
    assert silhouette(x, labels >= 0) > 0.5
