"""The engine thread, and the workers that prepare images for it.

Every request hands a function of the ``Service`` to ``run``, which runs it on the one
engine thread that touches the index and the database: changes and queries never
interleave. The heavy, read-only part of identification (decode, embed, local features)
runs first on a small pool of workers, several images at once (see
``server.engine.vision.threads``). The event loop only ever awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from server import contract
from server.engine.catalog.making import PreparedReference
from server.engine.catalog.store import AnnotationRow, ReviewItem
from server.engine.errors import BusyError
from server.engine.live.annotating import AnnotationPlan
from server.engine.live.service import ObjectResult, Prepared, Service
from server.engine.vision import threads

from .limits import MAX_PENDING_PER_WORKER

T = TypeVar("T")


class EngineRunner:
    """Runs functions of the service on the engine thread."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers, self.threads_per_worker = threads.plan(workers)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self.compute = ThreadPoolExecutor(self.workers, thread_name_prefix="prepare")
        self._previous_threads: tuple[int, int] | None = None
        self.service: Service | None = None
        self.pending = 0
        """Calls submitted and not finished."""
        self.images_in_flight = 0
        """Images (identifications, new references) between admission and answer: what
        ``max_pending`` bounds (other calls, such as health, are not counted)."""
        self.prepare_s = 0.0
        """Seconds spent preparing images (decode, embed, local features), summed."""
        self.decide_s = 0.0
        """Seconds spent deciding on the engine thread, summed."""
        self.identified = 0
        self.max_pending = MAX_PENDING_PER_WORKER * self.workers
        """Images (identifications, new references) in flight at most; more are refused
        at once (429), so a request's wait stays a few images' time instead of growing
        with a queue."""
        self.refused = 0
        """Requests refused for being over ``max_pending`` (answered 429)."""

    async def open(self, opener: Callable[[], Service]) -> None:
        """Open the service on the engine thread and warm the model up."""
        loop = asyncio.get_running_loop()
        self._previous_threads = threads.apply(self.threads_per_worker)
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

    async def run_worker(self, fn: Callable[[Service], T]) -> T:
        """``fn(service)`` on a worker (for work that reads neither the database nor
        the index, such as grouping a snapshot of the queue), so the engine thread
        goes on identifying meanwhile."""
        service = self.service
        if service is None:
            raise RuntimeError("the engine is not open")
        return await asyncio.get_running_loop().run_in_executor(self.compute, fn, service)

    async def identify(
        self,
        image: bytes | np.ndarray,
        *,
        source: str,
        live: bool = False,
        record: bool = True,
        name: str = "upload",
        bounded: bool = False,
    ) -> list[ObjectResult]:
        """Prepare the image on a worker, then decide on the engine thread.

        ``bounded`` refuses at once (``BusyError``) when ``max_pending`` images are
        already in flight.

        Raises:
            ImageRejected: not a usable image.
            BusyError: saturated (with ``bounded``).
        """
        loop = asyncio.get_running_loop()
        async with self._image_in_flight(bounded) as service:

            def prepare() -> Prepared:
                t0 = time.perf_counter()
                try:
                    return service.prepare(image, name)
                finally:
                    self.prepare_s += time.perf_counter() - t0

            prepared = await loop.run_in_executor(self.compute, prepare)

            def decide() -> list[ObjectResult]:
                t0 = time.perf_counter()
                try:
                    return service.identify_prepared(
                        prepared, source=source, live=live, record=record
                    )
                finally:
                    self.decide_s += time.perf_counter() - t0
                    self.identified += 1

            return await loop.run_in_executor(self.executor, decide)

    @contextlib.asynccontextmanager
    async def _image_in_flight(self, bounded: bool) -> AsyncIterator[Service]:
        """Count one image in flight for its whole way through (worker, then engine
        thread); with ``bounded``, refuse it at once when ``max_pending`` are."""
        service = self.service
        if service is None:
            raise RuntimeError("the engine is not open")
        if bounded and self.images_in_flight >= self.max_pending:
            self.refused += 1
            raise BusyError(
                f"the server is busy ({self.images_in_flight} images in "
                "flight); try again in a moment"
            )
        self.pending += 1
        self.images_in_flight += 1
        try:
            yield service
        finally:
            self.pending -= 1
            self.images_in_flight -= 1

    async def add_reference(
        self,
        data: bytes,
        label: object,
        taxonomy: str | None,
        *,
        bounded: bool = True,
        source: str = "api",
    ) -> contract.ReferenceAdded:
        """A new reference: decoded and embedded on a worker, committed on the engine
        thread (which meanwhile goes on identifying and answering health).

        Raises:
            ImageRejected, IdentifyError: see ``Service.prepare_reference``.
            BusyError: saturated (with ``bounded``).
        """
        loop = asyncio.get_running_loop()
        async with self._image_in_flight(bounded) as service:
            prepared = await loop.run_in_executor(
                self.compute, service.prepare_reference, data, label, taxonomy
            )
            return await loop.run_in_executor(
                self.executor, service.commit_reference, prepared, source
            )

    async def resolve(
        self,
        item_id: int,
        action: str,
        label: object = None,
        candidate: int | None = None,
        region: str | None = None,
        author: str = "local",
    ) -> ReviewItem:
        """A review decision: checked on the engine thread, the reference it makes (if
        any) prepared on a worker, then committed on the engine thread.

        Raises:
            NotFoundError, ConflictError, IdentifyError: see ``ReviewDesk.plan``.
        """
        plan = await self.run(
            lambda s: s.resolve_plan(item_id, action, label, candidate, region, author)
        )
        return await self._prepared(plan, Service.prepare_resolution, Service.resolve_commit)

    async def annotate(self, plan: Callable[[Service], AnnotationPlan]) -> AnnotationRow:
        """An annotation created or changed: ``plan`` checks it on the engine thread, the
        reference it makes (if any) is prepared on a worker, then all is committed.

        Raises:
            NotFoundError, ConflictError, IdentifyError: see ``AnnotationDesk``.
        """
        checked = await self.run(plan)
        return await self._prepared(checked, Service.prepare_annotation, Service.commit_annotation)

    async def _prepared(
        self,
        plan: AnnotationPlan,
        prepare: Callable[[Service, AnnotationPlan], PreparedReference | None],
        commit: Callable[[Service, AnnotationPlan, PreparedReference | None], T],
    ) -> T:
        loop = asyncio.get_running_loop()
        async with self._image_in_flight(bounded=False) as service:
            prepared = await loop.run_in_executor(self.compute, prepare, service, plan)
            return await loop.run_in_executor(self.executor, commit, service, plan, prepared)

    def timing(self) -> contract.StageTiming:
        """Mean milliseconds per identified image in each stage (for health)."""
        n = max(1, self.identified)
        return {
            "prepare_ms": round(1000 * self.prepare_s / n, 1),
            "decide_ms": round(1000 * self.decide_s / n, 1),
        }

    async def close(self) -> None:
        """Save and close the service, then stop the thread."""
        if self.service is not None:
            loop = asyncio.get_running_loop()
            service, self.service = self.service, None
            await loop.run_in_executor(self.executor, service.close)
        self.compute.shutdown(wait=True)
        self.executor.shutdown(wait=True)
        if self._previous_threads is not None:
            threads.restore(self._previous_threads)
