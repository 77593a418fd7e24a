"""The review queue: list, fetch, see the crop, resolve."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import contract
from server.engine.errors import IdentifyError

from ..io import read_json
from ..jobs import each, wait_for_client
from ..keys import ENGINE, JOBS
from ..limits import MAX_BULK
from . import author, int_param, is_row_id, query_int

routes = web.RouteTableDef()


@routes.get("/api/review")
async def list_items(request: web.Request) -> web.Response:
    """Items newest first. Query: ``status`` (default pending), ``taxonomy``, ``reason``,
    ``limit`` (default 50), ``before`` (an id, to page)."""
    q = request.query
    status = q.get("status", "pending")
    limit = query_int(request, "limit", 50) or 50
    before = query_int(request, "before", None)
    items, total = await request.app[ENGINE].run(
        lambda s: s.review_items(status, q.get("taxonomy"), q.get("reason"), limit, before)
    )
    page: contract.ReviewPage = {
        "items": [i.to_json() for i in items],
        "total": total,
    }
    return web.json_response(page)


@routes.get("/api/stats")
async def stats(request: web.Request) -> web.Response:
    """Annotations by type and label, per day and week, the rates to watch, drift, and
    auto-label coverage. Query: ``label`` (a class or a level of its path), ``depth``
    (count labels cut to that many levels)."""
    label = request.query.get("label") or None
    depth = query_int(request, "depth", None)
    if depth is not None and not 1 <= depth <= 16:
        raise IdentifyError("depth must be between 1 and 16")
    return web.json_response(await request.app[ENGINE].run(lambda s: s.review_stats(label, depth)))


@routes.post("/api/review/bulk")
async def bulk(request: web.Request) -> web.Response:
    """``{"ids": [...], "action": ..., "label": ..., "wait": true}``: each item resolved
    on its own, one result per id (at most ``MAX_BULK`` ids), an item a step, as a job
    (``"wait": false`` answers 202 with the job; see ``/api/references/import``)."""
    body = await read_json(request)
    ids, action, wait = body.get("ids"), body.get("action"), body.get("wait", True)
    if not isinstance(ids, list) or not ids or not all(is_row_id(i) for i in ids):
        raise IdentifyError("'ids' must list review item ids (integers from 0)")
    if len(ids) > MAX_BULK:
        raise IdentifyError(f"at most {MAX_BULK} items at once")
    if not isinstance(action, str):
        raise IdentifyError("'action' is required")
    if not isinstance(wait, bool):
        raise IdentifyError("'wait' must be true or false")
    engine, label = request.app[ENGINE], body.get("label")

    who = author(request)

    async def resolve_one(item_id: int) -> dict[str, Any]:
        return {"item": (await engine.resolve(item_id, action, label, author=who)).to_json()}

    job = request.app[JOBS].start(
        "review_bulk", len(ids), each(ids, resolve_one, lambda i: {"id": i})
    )
    if not wait:
        return web.json_response({"job": job.to_json(results=False)}, status=202)
    await wait_for_client(request, job)
    return web.json_response({"results": job.results, "job": job.to_json(results=False)})


@routes.post("/api/review/{id}/reopen")
async def reopen(request: web.Request) -> web.Response:
    """Undo a decision: the item is pending again and its reference removed."""
    item_id = int_param(request, "id")
    item = await request.app[ENGINE].run(lambda s: s.reopen(item_id))
    return web.json_response(item.to_json())


@routes.get("/api/review/{id}")
async def get_item(request: web.Request) -> web.Response:
    """One item."""
    item_id = int_param(request, "id")
    item = await request.app[ENGINE].run(lambda s: s.review_item(item_id))
    return web.json_response(item.to_json())


@routes.get("/api/review/{id}/image")
async def item_image(request: web.Request) -> web.StreamResponse:
    """The item's picture (JPEG); ``?box=1`` draws the box the object was found in (green
    when the reference's geometry was found there, amber when doubtful)."""
    item_id = int_param(request, "id")
    engine = request.app[ENGINE]
    if request.query.get("box") in ("1", "true", "yes"):
        data = await engine.run(lambda s: s.crop_with_box(item_id))
        return web.Response(body=data, content_type="image/jpeg")
    path = await engine.run(lambda s: s.crop_file(item_id))
    return web.FileResponse(path)


@routes.post("/api/review/{id}/resolve")
async def resolve(request: web.Request) -> web.Response:
    """``{"action": "confirm" | "correct" | "unknown" | "false_positive" | "skip",
    "label": ..., "candidate": n, "region": "box" | "whole"}``: stored as an annotation
    (see ``/api/annotations``). Confirm and correct make the item's picture a reference
    at once (the region the object was found in, unless ``region`` is ``whole``);
    ``unknown``: none of the known classes; ``false_positive``: nothing of interest is
    there. An item resolved meanwhile gives 409."""
    item_id = int_param(request, "id")
    body = await read_json(request)
    action = body.get("action")
    if not isinstance(action, str):
        raise IdentifyError("'action' is required")
    candidate = body.get("candidate")
    if candidate is not None and not is_row_id(candidate):
        raise IdentifyError("'candidate' must be a number from 1")
    region = body.get("region")
    if region is not None and not isinstance(region, str):
        raise IdentifyError("'region' must be 'box' or 'whole'")
    item = await request.app[ENGINE].resolve(
        item_id, action, body.get("label"), candidate, region, author(request)
    )
    return web.json_response(item.to_json())
