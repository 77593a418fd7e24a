"""The web page: ``GET /`` and its static files (only from the package's own folder)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent.parent / "static"

routes = web.RouteTableDef()


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    """The live webcam page."""
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


routes.static("/static", STATIC, follow_symlinks=False)
