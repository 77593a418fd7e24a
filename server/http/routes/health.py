"""``GET /api/health``: is it up, and what is it serving."""

from __future__ import annotations

from aiohttp import web

from server import contract

from ..keys import CAMERAS, DELIVERER, ENGINE, EVENTS, STATS

routes = web.RouteTableDef()


@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    """Model, index size, classes, thresholds, queue, uptime and counters."""
    engine = request.app[ENGINE]
    project = await engine.run(lambda s: s.health())
    server: contract.ServerHealth = {
        **request.app[STATS].to_json(),
        "pending": engine.pending,
        "images_in_flight": engine.images_in_flight,
        "busy_refused": engine.refused,
        "workers": engine.workers,
        **engine.timing(),
        "event_subscribers": request.app[EVENTS].subscribers,
        "events_dropped": request.app[EVENTS].dropped,
    }
    body: contract.Health = {
        **project,
        "server": server,
        "cameras": [c.status() for c in request.app[CAMERAS]],
        "webhooks": [w.to_json() for w in request.app[DELIVERER].states()],
    }
    return web.json_response(body)
