"""Jobs: long work (imports) in small steps; list, see, cancel."""

from __future__ import annotations

from aiohttp import web

from ..keys import JOBS
from . import int_param

routes = web.RouteTableDef()


@routes.get("/api/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    """Running and recently finished jobs, newest first (without their results)."""
    return web.json_response({"jobs": [j.to_json(results=False) for j in request.app[JOBS].list()]})


@routes.get("/api/jobs/{id}")
async def get_job(request: web.Request) -> web.Response:
    """One job, with a result per finished step."""
    return web.json_response(request.app[JOBS].get(int_param(request, "id")).to_json())


@routes.delete("/api/jobs/{id}")
async def cancel_job(request: web.Request) -> web.Response:
    """Stop a running job after its current step (409 if it has finished)."""
    job = request.app[JOBS].cancel(int_param(request, "id"))
    return web.json_response(job.to_json(results=False), status=202)
