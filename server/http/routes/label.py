"""Bulk auto-labelling of folders on the server's machine, as a job (``identify label``
sends its work here while a server holds the project)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from server.engine.errors import IdentifyError
from server.engine.loop.labelling import summarise

from ..io import read_json
from ..jobs import each, wait_for_client
from ..keys import ENGINE, JOBS

routes = web.RouteTableDef()


@routes.post("/api/label")
async def label(request: web.Request) -> web.Response:
    """``{"paths": [file or folder, ...], "wait": true}``: label every image file under
    the paths (folders recursively) on the server's machine, one file a step, as a job
    with progress on the events socket. A file labelled before (by its content) is not
    decided again. With ``wait`` the answer holds the summary and a result per file;
    without, 202 and the job (``GET /api/jobs/{id}``)."""
    body = await read_json(request)
    paths, wait = body.get("paths"), body.get("wait", True)
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise IdentifyError("'paths' must list files or folders on the server's machine")
    if not isinstance(wait, bool):
        raise IdentifyError("'wait' must be true or false")
    engine = request.app[ENGINE]
    service = engine.service
    assert service is not None
    loop = asyncio.get_running_loop()
    files = await loop.run_in_executor(engine.compute, service.label_plan, paths)

    async def one(path: Path) -> dict[str, Any]:
        data, digest = await loop.run_in_executor(engine.compute, service.read_for_label, path)
        known = await engine.run(lambda s: s.labelled_before(digest, str(path)))
        if known is not None:
            return dict(known)
        prepared = await loop.run_in_executor(engine.compute, service.prepare, data, path.name)
        return dict(await engine.run(lambda s: s.label_prepared(prepared, digest, str(path))))

    job = request.app[JOBS].start(
        "label", len(files), each(files, one, lambda path: {"path": str(path)})
    )
    if not wait:
        return web.json_response({"job": job.to_json(results=False)}, status=202)
    await wait_for_client(request, job)
    return web.json_response(
        {
            "summary": summarise(job.results),
            "results": job.results,
            "job": job.to_json(results=False),
        }
    )
