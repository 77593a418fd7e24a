"""Annotations: every decision about a prediction. Create, list, read, change, delete,
and bulk (each operation on its own, a result per operation)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import contract
from server.engine.errors import IdentifyError
from server.engine.loop.report import annotation_json

from ..io import read_json
from ..jobs import each, wait_for_client
from ..keys import ENGINE, JOBS
from ..limits import MAX_BULK, MAX_BULK_JSON_BYTES
from . import author, int_param, is_row_id, query_int

routes = web.RouteTableDef()

OPS = ("create", "update", "delete")
CREATE_KEYS = {"item_id", "type", "label", "box", "region"}
UPDATE_KEYS = {"type", "label", "box"}


@routes.get("/api/annotations")
async def list_annotations(request: web.Request) -> web.Response:
    """Newest first. Query: ``type``, ``label`` (a class or a level of its path),
    ``taxonomy``, ``author``, ``item_id``, ``since`` and ``until`` (ISO times),
    ``limit`` (default 100), ``before`` (an id, to page)."""
    q = request.query
    filters: dict[str, Any] = {
        k: q.get(k) or None for k in ("type", "label", "taxonomy", "author", "since", "until")
    }
    filters["item_id"] = query_int(request, "item_id", None)
    limit = query_int(request, "limit", 100) or 100
    before = query_int(request, "before", None)
    rows, total = await request.app[ENGINE].run(lambda s: s.annotations(filters, limit, before))
    page: contract.AnnotationPage = {
        "annotations": [annotation_json(r) for r in rows],
        "total": total,
    }
    return web.json_response(page)


@routes.post("/api/annotations")
async def create(request: web.Request) -> web.Response:
    """``{"item_id": n, "type": "confirmed" | "corrected" | "false_positive" | "missed",
    "label": ..., "box": [x0, y0, x1, y1], "region": "box" | "whole"}``: 201 with the
    annotation. All but ``missed`` decide the item (which must be pending); a label
    makes a reference at once."""
    body = await read_json(request)
    annotation = await _create(request, body)
    return web.json_response(annotation, status=201)


@routes.get("/api/annotations/{id}")
async def get_annotation(request: web.Request) -> web.Response:
    annotation_id = int_param(request, "id")
    row = await request.app[ENGINE].run(lambda s: s.annotation(annotation_id))
    return web.json_response(annotation_json(row))


@routes.patch("/api/annotations/{id}")
async def update(request: web.Request) -> web.Response:
    """``{"type": ..., "label": ..., "box": ...}`` (any of them): the reference the
    annotation made follows its label."""
    annotation_id = int_param(request, "id")
    body = await read_json(request)
    return web.json_response(await _update(request, annotation_id, body))


@routes.delete("/api/annotations/{id}")
async def delete(request: web.Request) -> web.Response:
    """Remove an annotation: its item goes back to the queue and the reference its
    label made is removed."""
    annotation_id = int_param(request, "id")
    await request.app[ENGINE].run(lambda s: s.delete_annotation(annotation_id))
    return web.json_response({"deleted": annotation_id})


@routes.post("/api/annotations/bulk")
async def bulk(request: web.Request) -> web.Response:
    """``{"operations": [{"op": "create", ...}, {"op": "update", "id": n, ...},
    {"op": "delete", "id": n}], "wait": true}``: at most ``MAX_BULK``, each applied on
    its own (one that fails leaves the others), a result per operation, as a job
    (``"wait": false`` answers 202 with the job)."""
    body = await read_json(request, MAX_BULK_JSON_BYTES)
    operations, wait = body.get("operations"), body.get("wait", True)
    if not isinstance(operations, list) or not operations:
        raise IdentifyError("'operations' must list the operations")
    if len(operations) > MAX_BULK:
        raise IdentifyError(
            f"{len(operations)} operations; at most {MAX_BULK} at once (nothing was applied)"
        )
    if not isinstance(wait, bool):
        raise IdentifyError("'wait' must be true or false")

    async def apply(entry: tuple[int, object]) -> dict[str, Any]:
        _, op = entry
        if not isinstance(op, dict) or op.get("op") not in OPS:
            raise IdentifyError(f"each operation is an object with 'op': one of {', '.join(OPS)}")
        if op["op"] == "create":
            return {"annotation": await _create(request, _only(op, CREATE_KEYS | {"op"}))}
        if not is_row_id(op.get("id")):
            raise IdentifyError(f"{op['op']} needs the annotation's 'id'")
        if op["op"] == "update":
            fields = _only(op, UPDATE_KEYS | {"op", "id"})
            fields.pop("op")
            annotation_id = fields.pop("id")
            return {"annotation": await _update(request, annotation_id, fields)}
        await request.app[ENGINE].run(lambda s: s.delete_annotation(op["id"]))
        return {"deleted": op["id"]}

    def name(entry: tuple[int, object]) -> dict[str, Any]:
        index, op = entry
        return {"index": index, "op": op.get("op") if isinstance(op, dict) else None}

    job = request.app[JOBS].start(
        "annotations_bulk", len(operations), each(list(enumerate(operations)), apply, name)
    )
    if not wait:
        return web.json_response({"job": job.to_json(results=False)}, status=202)
    await wait_for_client(request, job)
    applied = sum(1 for r in job.results if r["ok"])
    return web.json_response(
        {
            "results": job.results,
            "applied": applied,
            "failed": len(job.results) - applied,
            "job": job.to_json(results=False),
        }
    )


async def _create(request: web.Request, body: dict[str, Any]) -> contract.Annotation:
    unknown = sorted(set(body) - CREATE_KEYS - {"op"})
    if unknown:
        raise IdentifyError(
            f"unknown field {unknown[0]!r}; one of {', '.join(sorted(CREATE_KEYS))}"
        )
    if not is_row_id(body.get("item_id")):
        raise IdentifyError("'item_id' must be a review item's id")
    item_id = int(body["item_id"])
    region = body.get("region")
    if region is not None and not isinstance(region, str):
        raise IdentifyError("'region' must be 'box' or 'whole'")
    if region not in (None, "box", "whole"):
        raise IdentifyError("'region' must be 'box' or 'whole'")
    who = author(request)
    row = await request.app[ENGINE].annotate(
        lambda s: s.plan_annotation(
            item_id, body.get("type"), body.get("label"), body.get("box"), region, who
        )
    )
    return annotation_json(row)


async def _update(
    request: web.Request, annotation_id: int, changes: dict[str, Any]
) -> contract.Annotation:
    if not changes:
        raise IdentifyError("nothing to change: give type, label or box")
    row = await request.app[ENGINE].annotate(
        lambda s: s.plan_annotation_update(annotation_id, changes)
    )
    return annotation_json(row)


def _only(op: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = sorted(set(op) - allowed)
    if unknown:
        raise IdentifyError(f"unknown field {unknown[0]!r} in a {op['op']} operation")
    return dict(op)
