"""``POST /api/identify``: one image in, its objects out."""

from __future__ import annotations

import time

from aiohttp import web

from server import contract

from ..io import read_image
from ..keys import ENGINE

routes = web.RouteTableDef()


@routes.post("/api/identify")
async def identify(request: web.Request) -> web.Response:
    """Identify an uploaded image (multipart field ``image`` or a raw ``image/*`` body).

    Query: ``source`` (recorded with misses, default ``api``), ``record=0`` to store
    nothing. Misses that pass the quality gate are queued for review.
    """
    started = time.perf_counter()
    data, fields = await read_image(request)
    source = fields.get("source") or request.query.get("source") or "api"
    record = request.query.get("record", "1") not in ("0", "false", "no")
    objects = await request.app[ENGINE].identify(
        data, source=source[:100], record=record, bounded=True
    )
    body: contract.IdentifyResponse = {
        "objects": [o.to_json() for o in objects],
        "image_size": list(objects[0].picture) if objects else [0, 0],
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    return web.json_response(body)
