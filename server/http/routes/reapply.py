"""Retroactive re-application: every stored answer decided again against the
references and thresholds in force now, as a job (``identify reapply`` sends its work
here while a server holds the project)."""

from __future__ import annotations

import asyncio
from functools import partial

from aiohttp import web

from server.engine.catalog.store import Reapplication
from server.engine.errors import ConflictError, IdentifyError
from server.engine.live.service import Service
from server.engine.loop.reapply import Step

from ..io import read_json
from ..jobs import Job, wait_for_client
from ..keys import ENGINE, JOBS

routes = web.RouteTableDef()


def _step(service: Service, run: Reapplication) -> tuple[Reapplication, Step]:
    return service.reapply_step(run)


KIND = "reapply"


def _running(request: web.Request) -> Job | None:
    return next((j for j in request.app[JOBS].list() if j.kind == KIND and not j.finished), None)


@routes.get("/api/reapply")
async def status(request: web.Request) -> web.Response:
    """The newest re-application as it stands (``null`` before the first)."""
    here = _running(request) is not None
    run = await request.app[ENGINE].run(lambda s: s.reapplication(here))
    return web.json_response({"reapplication": run})


@routes.post("/api/reapply")
async def start(request: web.Request) -> web.Response:
    """``{"wait": true}``: re-decide every stored answer (resuming the one a crash
    stopped), a batch a step, as a job whose progress counts answers. A second one while
    one runs gives 409. With ``wait`` the answer holds the finished re-application; without,
    202 and the job."""
    body = await read_json(request)
    wait = body.get("wait", True)
    if not isinstance(wait, bool):
        raise IdentifyError("'wait' must be true or false")
    running = _running(request)
    if running is not None:
        raise ConflictError(f"a re-application is running (job {running.id}); wait for it")
    engine = request.app[ENGINE]
    started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def body_(job: Job) -> None:
        # The job exists before its first await, so a second request sees it (409).
        try:
            run, resumed, job.total = await engine.run(lambda s: s.reapply_start())
        except BaseException as exc:
            why = exc if isinstance(exc, Exception) else ConflictError("the server is stopping")
            started.set_exception(why)
            raise
        started.set_result(resumed)
        while run.status == "running":
            if job.cancel_requested:
                return
            run, step = await engine.run(partial(_step, run=run))
            job.step_done(step.seen)
        final = await engine.run(lambda s: s.reapplication(False))
        job.results.append({"reapplication": final, "resumed": resumed})

    job = request.app[JOBS].start(KIND, 0, body_)
    resumed = await asyncio.shield(started)
    if not wait:
        return web.json_response({"job": job.to_json(results=False)}, status=202)
    await wait_for_client(request, job)
    final = await engine.run(lambda s: s.reapplication(False))
    return web.json_response(
        {"reapplication": final, "resumed": resumed, "job": job.to_json(results=False)}
    )
