"""The seed tool's live canvas API, so its page works against this server unchanged:
``POST /api/falcon`` (multipart ``image`` and ``query``) answers with its ``masks``
shape, and ``GET /refs/<ref_filename>`` serves the matched reference's image.

The seed ran a text-prompted detector (``query`` said what to find); here the project's
own detector finds the things and ``query`` is echoed back. Same authentication, origin
checks and limits as the rest of the API; ``/refs/`` serves active references only,
named by id and file name (``12_Dark_Magician_ur.png``), so no path reaches anything
else.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from server.engine.catalog.store import ReferenceRow
from server.engine.errors import IdentifyError, NotFoundError
from server.engine.live.service import ObjectResult

from ..io import read_image
from ..keys import ENGINE

routes = web.RouteTableDef()

TOP_K = 5
"""Candidates listed per mask (the seed's ``top_k``)."""
MAX_QUERY_CHARS = 200
REF_NAME = re.compile(r"(\d{1,18})_([^/\\\x00]{1,255})")
"""``<reference id>_<file name>``: what ``ref_filename`` holds."""


@routes.post("/api/falcon")
async def falcon(request: web.Request) -> web.Response:
    """Identify the things in an uploaded frame, in the seed's answer shape."""
    started = time.perf_counter()
    data, fields = await read_image(request)
    query = (fields.get("query") or "").strip()
    if not query:
        raise IdentifyError("the form needs a 'query' (what to find, e.g. 'card')")
    if len(query) > MAX_QUERY_CHARS:
        raise IdentifyError(f"'query' is at most {MAX_QUERY_CHARS} characters")
    engine = request.app[ENGINE]
    objects = await engine.identify(data, source="falcon", bounded=True)
    ids = {c.reference_id for o in objects for c in o.decision.candidates[:TOP_K]}
    refs = await engine.run(lambda s: s.reference_rows(ids))
    width, height = objects[0].picture if objects else (0, 0)
    return web.json_response(
        {
            "image_size": [width, height],
            "count": len(objects),
            "masks": [_mask(o, refs, query) for o in objects],
            "query": query,
            "elapsed_seconds": round(time.perf_counter() - started, 3),
        }
    )


@routes.get("/refs/{name}")
async def reference_file(request: web.Request) -> web.FileResponse:
    """A reference's image by its ``ref_filename``."""
    match = REF_NAME.fullmatch(request.match_info["name"])
    if match is None:
        raise NotFoundError("no such reference file")
    ref_id, name = int(match[1]), match[2]
    path = await request.app[ENGINE].run(lambda s: s.reference_file(ref_id))
    if path.name != name:
        raise NotFoundError("no such reference file")
    return web.FileResponse(path)


def _ref_filename(row: ReferenceRow | None) -> str | None:
    return None if row is None else f"{row.id}_{Path(row.path).name}"


def _mask(obj: ObjectResult, refs: dict[int, ReferenceRow], query: str) -> dict[str, Any]:
    decision, (width, height) = obj.decision, obj.picture
    x0, y0, x1, y1 = obj.bbox if obj.bbox is not None else (0, 0, width, height)
    area = max(1, width * height)
    top = decision.candidates[0] if decision.candidates else None
    best = refs.get(decision.reference_id or (top.reference_id if top else -1))
    return {
        "bbox_norm": {
            "x1": round(x0 / max(1, width), 4),
            "y1": round(y0 / max(1, height), 4),
            "x2": round(x1 / max(1, width), 4),
            "y2": round(y1 / max(1, height), 4),
        },
        "area_fraction": round((x1 - x0) * (y1 - y0) / area, 4),
        "label": query,
        "name": decision.label if decision.matched else (top.label if top else None),
        "rarity": best.rarity if best is not None else None,
        "score": round(decision.score, 4),
        "top_k": [
            {
                "name": c.label,
                "filename": _ref_filename(refs.get(c.reference_id)),
                "score": round(c.score, 4),
            }
            for c in decision.candidates[:TOP_K]
        ],
        "margin": round(decision.margin, 4),
        "confident": decision.matched,
        "ref_filename": _ref_filename(best),
    }
