"""Bounded, ordered parallel map: decode on a small thread pool while the model runs.

``concurrent.futures.Executor.map`` submits every item at once, which for a folder of
100k images means 100k decoded images in memory. This keeps at most ``window`` in
flight, yielding results in input order so batches stay deterministic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

DECODE_WORKERS = 2
"""Decoding threads (OpenCV and Pillow release the GIL while decoding)."""


def bounded_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], window: int
) -> Iterator[R]:
    """Like ``pool.map(fn, items)`` but with at most ``window`` tasks in flight."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
