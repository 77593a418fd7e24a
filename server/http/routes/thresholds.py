"""Thresholds per taxonomy and per class: read, set, clear."""

from __future__ import annotations

from aiohttp import web

from server.engine.errors import IdentifyError

from ..io import read_json
from ..keys import ENGINE
from . import query_float

routes = web.RouteTableDef()


@routes.get("/api/thresholds")
async def get_thresholds(request: web.Request) -> web.Response:
    """Default, per-taxonomy and per-class thresholds in force, and the overrides."""
    return web.json_response(await request.app[ENGINE].run(lambda s: s.thresholds()))


@routes.get("/api/thresholds/curve")
async def threshold_curve(request: web.Request) -> web.Response:
    """Coverage and precision around a threshold, from data already seen:
    ``?taxonomy=`` or ``?label=`` (a class), optionally ``&threshold=&margin=`` (the
    values to look around; default: those in force)."""
    q = request.query
    unknown = set(q) - {"taxonomy", "label", "threshold", "margin"}
    if unknown:
        raise IdentifyError(f"unknown parameter {min(unknown)!r}")
    threshold, margin = query_float(request, "threshold"), query_float(request, "margin")
    taxonomy, label = q.get("taxonomy") or None, q.get("label") or None
    body = await request.app[ENGINE].run(
        lambda s: s.threshold_curve(taxonomy, label, threshold, margin)
    )
    return web.json_response(body)


@routes.put("/api/thresholds")
async def set_threshold(request: web.Request) -> web.Response:
    """``{"scope": "taxonomy" | "class", "name": ..., "threshold": x, "margin": y}``;
    a value left out (or null) is inherited from the project file, so both left out
    clears the override. Applies to the next request and persists."""
    body = await read_json(request)
    scope, name = body.get("scope"), body.get("name")
    if not isinstance(scope, str) or not isinstance(name, str):
        raise IdentifyError("'scope' and 'name' are required")
    unknown = set(body) - {"scope", "name", "threshold", "margin"}
    if unknown:
        raise IdentifyError(f"unknown field {min(unknown)!r}")
    result = await request.app[ENGINE].run(
        lambda s: s.set_threshold(scope, name, body.get("threshold"), body.get("margin"))
    )
    return web.json_response(result)
