"""Long work as jobs: a series of small steps on the workers and the engine thread, so
identification and health interleave with it, with progress on the events stream, and
cancelled by an API call or when the client waiting for it goes away.

A job stops between two steps, never inside one: every step it finished is committed
and listed in its results, and nothing of the step it did not start is written.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from server import contract
from server.engine.errors import BusyError, ConflictError, IdentifyError, NotFoundError

from .events import EventHub
from .limits import JOB_POLL_S, MAX_FINISHED_JOBS, MAX_RUNNING_JOBS

log = logging.getLogger(__name__)
T = TypeVar("T")

JobBody = Callable[["Job"], Awaitable[None]]
"""The work: runs steps, appends one result per step, calls ``job.step_done()`` after
each and returns early when ``job.cancel_requested``."""


@dataclass
class Job:
    """One piece of long work and where it stands."""

    id: int
    kind: str
    total: int
    hub: EventHub
    done: int = 0
    status: contract.JobStatus = "running"
    """``running``, then ``done``, ``cancelled`` or ``failed``."""
    results: list[dict[str, Any]] = field(default_factory=list)
    cancel_requested: bool = False
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    task: asyncio.Task[None] | None = None

    @property
    def finished(self) -> bool:
        """No more steps will run."""
        return self.status != "running"

    def step_done(self, n: int = 1) -> None:
        """Count ``n`` finished steps (or items) and tell the events stream."""
        self.done += n
        self._publish()

    def state(self) -> contract.JobState:
        """Where it stands (what its events say)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "done": self.done,
            "total": self.total,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
        }

    def to_json(self, results: bool = True) -> contract.Job:
        """The API shape (``results`` may be long: left out of listings)."""
        out: contract.Job = {**self.state()}
        if results:
            out["results"] = self.results
        return out

    def _publish(self) -> None:
        event: contract.JobEvent = {"type": "job", **self.state(), "at": time.time()}
        self.hub.publish(event)


class Jobs:
    """The server's jobs: those running, and the last ``MAX_FINISHED_JOBS`` finished."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub
        self._jobs: OrderedDict[int, Job] = OrderedDict()
        self._ids = itertools.count(1)

    def start(self, kind: str, total: int, body: JobBody) -> Job:
        """Run ``body`` as a new job, now, on the event loop.

        Raises:
            BusyError: ``MAX_RUNNING_JOBS`` are running already (each holds a worker, so
                more would starve identification).
        """
        running = sum(not j.finished for j in self._jobs.values())
        if running >= MAX_RUNNING_JOBS:
            raise BusyError(
                f"{running} jobs are running (at most {MAX_RUNNING_JOBS}); "
                "wait for one to end, or cancel one"
            )
        job = Job(next(self._ids), kind, total, self.hub)
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, body), name=f"job-{job.id}")
        job._publish()
        return job

    async def _run(self, job: Job, body: JobBody) -> None:
        try:
            await body(job)
            job.status = "cancelled" if job.cancel_requested and job.done < job.total else "done"
        except asyncio.CancelledError:
            job.status = "cancelled"
        except Exception as exc:  # a step's unexpected failure ends the job, not the server
            log.exception("job %d (%s) failed", job.id, job.kind)
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = time.time()
            job._publish()
            self._forget_old()

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.finished]
        for job_id in finished[: max(0, len(finished) - MAX_FINISHED_JOBS)]:
            del self._jobs[job_id]

    def get(self, job_id: int) -> Job:
        """Raises NotFoundError for an unknown (or long forgotten) job."""
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def list(self) -> list[Job]:
        """Newest first."""
        return list(reversed(self._jobs.values()))

    def cancel(self, job_id: int) -> Job:
        """Ask a job to stop after its current step.

        Raises:
            NotFoundError: no such job.
            ConflictError: it has finished.
        """
        job = self.get(job_id)
        if job.finished:
            raise ConflictError(f"job {job_id} is already {job.status}")
        job.cancel_requested = True
        return job

    async def close(self) -> None:
        """Stop every job at its next step (on shutdown) and wait for them."""
        running = [j for j in self._jobs.values() if not j.finished]
        for job in running:
            job.cancel_requested = True
        tasks = [j.task for j in running if j.task is not None]
        if tasks:
            await asyncio.wait(tasks)


def each(
    items: Sequence[T],
    step: Callable[[T], Awaitable[Mapping[str, object]]],
    name: Callable[[T], dict[str, Any]],
) -> JobBody:
    """A job body that runs ``step`` on each item in turn, each on its own: a result per
    item, ``{**name(item), "ok": True, **what step returned}`` or ``{**name(item), "ok":
    False, "error": {...}}`` for a user error; it stops between two items when
    cancelled."""

    async def body(job: Job) -> None:
        for item in items:
            if job.cancel_requested:
                return
            try:
                job.results.append({**name(item), "ok": True, **await step(item)})
            except IdentifyError as exc:
                job.results.append(
                    {**name(item), "ok": False, "error": {"code": exc.code, "message": exc.message}}
                )
            job.step_done()

    return body


async def wait_for_client(request: web.Request, job: Job) -> None:
    """Wait for ``job`` on behalf of the request that started it; when that client goes
    away first, the job is cancelled (after its current step)."""
    assert job.task is not None
    try:
        while not job.task.done():
            done, _ = await asyncio.wait([job.task], timeout=JOB_POLL_S)
            if not done and (request.transport is None or request.transport.is_closing()):
                job.cancel_requested = True
                await asyncio.wait([job.task])
    except asyncio.CancelledError:
        job.cancel_requested = True
        raise
