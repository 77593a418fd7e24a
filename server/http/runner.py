"""The engine thread: the one thread that touches the model, the index and the database.

Every request hands a function of the ``Service`` to ``run``; the event loop only ever
awaits. One thread means changes and queries never interleave, and torch gets the
machine's cores for one forward pass at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from server.engine.errors import BusyError
from server.engine.service import Service

from .limits import MAX_PENDING_REQUESTS

T = TypeVar("T")


class EngineRunner:
    """Runs functions of the service on the engine thread."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self.service: Service | None = None
        self.pending = 0
        """Calls submitted and not finished."""
        self.refused = 0
        """Calls refused by ``run_bounded`` (answered 429)."""

    async def open(self, opener: Callable[[], Service]) -> None:
        """Open the service on the engine thread and warm the model up."""
        loop = asyncio.get_running_loop()
        self.service = await loop.run_in_executor(self.executor, opener)
        await self.run(lambda s: s.warm_up())

    async def run(self, fn: Callable[[Service], T]) -> T:
        """``fn(service)`` on the engine thread."""
        service = self.service
        if service is None:
            raise RuntimeError("the engine is not open")
        loop = asyncio.get_running_loop()
        self.pending += 1
        try:
            return await loop.run_in_executor(self.executor, fn, service)
        finally:
            self.pending -= 1

    async def run_bounded(self, fn: Callable[[Service], T]) -> T:
        """Like ``run``, but refuse at once when ``MAX_PENDING_REQUESTS`` are waiting.

        Raises:
            BusyError: the engine is saturated; nothing was done.
        """
        if self.pending >= MAX_PENDING_REQUESTS:
            self.refused += 1
            raise BusyError("the server is busy identifying; try again in a moment")
        return await self.run(fn)

    async def close(self) -> None:
        """Save and close the service, then stop the thread."""
        if self.service is not None:
            loop = asyncio.get_running_loop()
            service, self.service = self.service, None
            await loop.run_in_executor(self.executor, service.close)
        self.executor.shutdown(wait=True)
