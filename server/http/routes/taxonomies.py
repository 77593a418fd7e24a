"""Separate taxonomies: their auto-labels, and promoting them into the references."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from server import contract
from server.engine.catalog.store import AutoLabel
from server.engine.errors import IdentifyError
from server.engine.live.promotion import Promotion
from server.engine.loop.promote import MAX_PROMOTE

from ..io import read_json
from ..jobs import each, wait_for_client
from ..keys import ENGINE, JOBS
from . import is_row_id, query_float, query_int

routes = web.RouteTableDef()


def auto_label_json(row: AutoLabel) -> contract.AutoLabel:
    return {
        "id": row.id,
        "label": row.label,
        "matched": row.matched,
        "confidence": round(row.confidence, 4),
        "source_reference_id": row.source_reference_id,
        "taxonomy": row.taxonomy,
        "model": row.model,
        "reviewed": row.reviewed,
        "item_id": row.item_id,
        "promoted_reference_id": row.promoted_id,
        "picture_kept": bool(row.picture),
        "created_at": row.created_at,
    }


@routes.get("/api/taxonomies/{name}/labels")
async def labels(request: web.Request) -> web.Response:
    """A separate taxonomy's labelled answers, newest first: ``?min_confidence=``,
    ``?limit=`` (default 100), ``?before=`` (an id, to page)."""
    name = request.match_info["name"]
    limit = query_int(request, "limit", 100) or 100
    before = query_int(request, "before", None)
    floor = query_float(request, "min_confidence")
    rows, total = await request.app[ENGINE].run(lambda s: s.auto_labels(name, limit, before, floor))
    page: contract.AutoLabelPage = {"labels": [auto_label_json(r) for r in rows], "total": total}
    return web.json_response(page)


@routes.post("/api/taxonomies/{name}/promote")
async def promote(request: web.Request) -> web.Response:
    """``{"min_confidence": x, "ids": [...], "wait": true}``: make references of a
    separate taxonomy's answers at or above the confidence (default: the taxonomy's
    ``promote_confidence``), or of the answers ``ids``; one answer a step, as a job
    (see ``/api/references/import``). A unified taxonomy gives 409."""
    name = request.match_info["name"]
    body = await read_json(request)
    floor, ids, wait = body.get("min_confidence"), body.get("ids"), body.get("wait", True)
    if floor is not None and (isinstance(floor, bool) or not isinstance(floor, int | float)):
        raise IdentifyError("'min_confidence' must be a number")
    if ids is not None and (
        not isinstance(ids, list) or not ids or not all(is_row_id(i) for i in ids)
    ):
        raise IdentifyError("'ids' must list answer ids")
    if ids is not None and len(ids) > MAX_PROMOTE:
        raise IdentifyError(f"at most {MAX_PROMOTE} answers at once")
    if not isinstance(wait, bool):
        raise IdentifyError("'wait' must be true or false")
    engine = request.app[ENGINE]
    plan = await engine.run(lambda s: s.promotion_plan(name, floor, ids))

    async def one(step: Promotion) -> dict[str, Any]:
        service = engine.service
        assert service is not None
        prepared = await asyncio.get_running_loop().run_in_executor(
            engine.compute, service.prepare_promotion, step
        )
        added = await engine.run(lambda s: s.commit_promotion(step, prepared))
        return {"reference": added}

    job = request.app[JOBS].start(
        "promote", len(plan), each(plan, one, lambda step: {"id": step.label.id})
    )
    if not wait:
        return web.json_response({"job": job.to_json(results=False)}, status=202)
    await wait_for_client(request, job)
    promoted = sum(r["ok"] for r in job.results)
    return web.json_response(
        {"promoted": promoted, "results": job.results, "job": job.to_json(results=False)}
    )
