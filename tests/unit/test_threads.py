"""How work is split over the cores."""

from __future__ import annotations

import pytest
import torch

from server.engine.vision import threads


def test_one_worker_per_core_up_to_a_cap_and_cores_shared_out() -> None:
    assert threads.plan(cores=2) == (2, 1)
    assert threads.plan(cores=16) == (threads.MAX_AUTO_WORKERS, 4)
    assert threads.plan(workers=1, cores=8) == (1, 8)
    assert threads.plan(workers=3, cores=2) == (3, 1)
    with pytest.raises(ValueError):
        threads.plan(workers=0)


def test_apply_and_restore_thread_budget() -> None:
    before = torch.get_num_threads()
    previous = threads.apply(1)
    try:
        assert torch.get_num_threads() == 1
    finally:
        threads.restore(previous)
    assert torch.get_num_threads() == before
