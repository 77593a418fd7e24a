"""Webhooks: where each stands, the events they did not take (dead letters), and
sending those again."""

from __future__ import annotations

from aiohttp import web

from server import contract

from ..io import read_json
from ..keys import DELIVERER, ENGINE

routes = web.RouteTableDef()


@routes.get("/api/webhooks")
async def listing(request: web.Request) -> web.Response:
    """Each webhook's delivery state, and the dead letters not taken since."""
    dead = await request.app[ENGINE].run(lambda s: s.dead_letters())
    states = [w.to_json() for w in request.app[DELIVERER].states()]
    body: contract.Webhooks = {"webhooks": states, "dead_letters": dead}
    return web.json_response(body)


@routes.post("/api/webhooks/resend")
async def resend(request: web.Request) -> web.Response:
    """``{"ids": [...]}`` or ``{"webhook": name}`` or ``{}`` (all): send dead letters
    again, one attempt each; what fails again stays a dead letter."""
    body = await read_json(request)
    ids, webhook = body.get("ids"), body.get("webhook")
    count = await request.app[ENGINE].run(lambda s: s.resend(ids, webhook))
    request.app[DELIVERER].wake()
    answer: contract.Resent = {"resend": count}
    return web.json_response(answer)
