"""Classes and their references: list, add, remove, rename, merge."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from server import contract
from server.engine.errors import IdentifyError
from server.engine.vision.images import read_image_bytes

from ..io import read_image, read_json
from ..jobs import each, wait_for_client
from ..keys import ENGINE, JOBS
from . import int_param

routes = web.RouteTableDef()


@routes.get("/api/classes")
async def list_classes(request: web.Request) -> web.Response:
    """Every class with its taxonomy and reference count."""
    classes = await request.app[ENGINE].run(lambda s: s.classes())
    body: contract.ClassList = {"classes": classes}
    return web.json_response(body)


@routes.get("/api/classes/references")
async def class_references(request: web.Request) -> web.Response:
    """The references of the class ``?label=``."""
    label = request.query.get("label")
    if not label:
        raise IdentifyError("pass the class as ?label=")
    refs = await request.app[ENGINE].run(lambda s: s.references(label))
    body: contract.ClassReferences = {
        "label": label,
        "references": refs,
    }
    return web.json_response(body)


@routes.post("/api/classes/rename")
async def rename(request: web.Request) -> web.Response:
    """``{"from": old, "to": new}``; 409 when ``new`` exists (merge instead)."""
    body = await read_json(request)
    old, new = body.get("from"), body.get("to")
    if not isinstance(old, str):
        raise IdentifyError("'from' must be the class to rename")
    result = await request.app[ENGINE].run(lambda s: s.rename_class(old, new))
    return web.json_response(result)


@routes.post("/api/classes/merge")
async def merge(request: web.Request) -> web.Response:
    """``{"from": [labels], "into": label}``: move every reference into one class."""
    body = await read_json(request)
    sources, into = body.get("from"), body.get("into")
    if isinstance(sources, str):
        sources = [sources]
    if (
        not isinstance(sources, list)
        or not sources
        or not all(isinstance(x, str) for x in sources)
        or not isinstance(into, str)
    ):
        raise IdentifyError("'from' must list classes and 'into' name an existing class")
    result = await request.app[ENGINE].run(lambda s: s.merge_classes(sources, into))
    return web.json_response(result)


@routes.post("/api/references")
async def add_reference(request: web.Request) -> web.Response:
    """Add an image (multipart ``image`` + ``label`` [+ ``taxonomy``], or a raw body with
    ``?label=``) as a reference; searchable by the next request."""
    data, fields = await read_image(request)
    label = fields.get("label")
    if label is None:
        raise IdentifyError("a reference needs a 'label'")
    taxonomy = fields.get("taxonomy") or None
    result = await request.app[ENGINE].add_reference(data, label, taxonomy)
    return web.json_response(result, status=201)


@routes.post("/api/references/import")
async def import_references(request: web.Request) -> web.Response:
    """``{"path": file or folder on the server, "label": optional, "taxonomy": optional,
    "wait": true}``: add its image files as references (labels from file names unless
    given), one file a step, as a job (see ``server.http.jobs``).

    With ``wait`` (the default) the answer comes when the job ends, with a result per
    file; a client that disconnects first cancels it. ``"wait": false`` answers 202 with
    the job at once (follow it on ``/api/events`` or ``GET /api/jobs/{id}``).
    """
    body = await read_json(request)
    path, wait = body.get("path"), body.get("wait", True)
    if not isinstance(path, str) or not path.strip():
        raise IdentifyError("'path' must name a file or folder on the server")
    label, taxonomy = body.get("label"), body.get("taxonomy")
    if taxonomy is not None and not isinstance(taxonomy, str):
        raise IdentifyError("'taxonomy' must be a string")
    if not isinstance(wait, bool):
        raise IdentifyError("'wait' must be true or false")
    engine = request.app[ENGINE]
    plan = await engine.run(lambda s: s.import_plan(path, label))

    async def add(entry: tuple[Path, object]) -> contract.ReferenceAdded:
        file, name = entry
        data = await asyncio.get_running_loop().run_in_executor(
            engine.compute, read_image_bytes, file
        )
        return await engine.add_reference(data, name, taxonomy, bounded=False)

    job = request.app[JOBS].start(
        "import", len(plan), each(plan, add, lambda e: {"path": str(e[0])})
    )
    if not wait:
        return web.json_response({"job": job.to_json(results=False)}, status=202)
    await wait_for_client(request, job)
    added = sum(r["ok"] for r in job.results)
    return web.json_response(
        {"added": added, "results": job.results, "job": job.to_json(results=False)},
        status=201 if added else 200,
    )


@routes.delete("/api/references/{id}")
async def remove_reference(request: web.Request) -> web.Response:
    """Remove a reference for good."""
    ref_id = int_param(request, "id")
    await request.app[ENGINE].run(lambda s: s.remove_reference(ref_id))
    return web.json_response({"removed": ref_id})


@routes.get("/api/references/{id}/image")
async def reference_image(request: web.Request) -> web.FileResponse:
    """The reference's image file (only from the project's own folders)."""
    ref_id = int_param(request, "id")
    path = await request.app[ENGINE].run(lambda s: s.reference_file(ref_id))
    return web.FileResponse(path)
