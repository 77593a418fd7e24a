"""How many images to work on at once, and how many threads each may use.

On a small CPU, one image per core with one thread each beats one image at a time
spread over all cores: a batch-1 forward pass parallelises poorly inside (RESULTS.md,
"Design choices").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

MAX_AUTO_WORKERS = 4
"""Most workers chosen automatically (more cores go to each worker's threads)."""


def plan(workers: int | None = None, cores: int | None = None) -> tuple[int, int]:
    """(workers, threads per worker) for ``workers`` (None: one per core, at most
    ``MAX_AUTO_WORKERS``) on ``cores`` (None: this machine's)."""
    n = cores or os.cpu_count() or 1
    w = workers if workers is not None else min(MAX_AUTO_WORKERS, n)
    if w < 1:
        raise ValueError("workers must be at least 1")
    return w, max(1, n // w)


def apply(threads_per_worker: int) -> tuple[int, int]:
    """Limit torch's and OpenCV's thread pools (process-wide) to ``threads_per_worker``.

    Returns the previous (torch, OpenCV) thread counts, for ``restore``.
    """
    import cv2
    import torch

    previous = (torch.get_num_threads(), cv2.getNumThreads())
    torch.set_num_threads(threads_per_worker)
    cv2.setNumThreads(threads_per_worker)
    return previous


def restore(previous: tuple[int, int]) -> None:
    """Undo ``apply``."""
    import cv2
    import torch

    torch.set_num_threads(previous[0])
    cv2.setNumThreads(previous[1])


@contextmanager
def worker_pool(workers: int | None, name: str) -> Iterator[tuple[ThreadPoolExecutor, int]]:
    """A pool of ``plan(workers)`` threads with torch and OpenCV limited to each one's
    share of the cores while it lives; yields (pool, number of workers)."""
    count, per_worker = plan(workers)
    previous = apply(per_worker)
    try:
        with ThreadPoolExecutor(count, thread_name_prefix=name) as pool:
            yield pool, count
    finally:
        restore(previous)
