"""The TUI against a real server on a real port (in-process, same event loop), serving
a real project: real SQLite, real index, the offline embedder."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from textual.pilot import Pilot

from identify_tui.app import IdentifyApp, make_tui
from identify_tui.client import TuiConfig
from server.engine.project.config import Project
from server.http.app import create_app
from server.http.config import ServeConfig
from tests.server.conftest import (  # noqa: F401 - fixtures shared with the server tests
    UNKNOWN_QUERY,
    built,
    make_project,
    project,
    query,
)


class Server:
    """A running server and a plain HTTP client to check what the TUI did."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sightings = 0

    async def get(self, path: str, **params: Any) -> Any:
        async with aiohttp.ClientSession() as s, s.get(self.url + path, params=params) as r:
            return await r.json()

    async def post(self, path: str, body: Any) -> Any:
        async with aiohttp.ClientSession() as s, s.post(self.url + path, json=body) as r:
            return await r.json()

    async def put_threshold(self, threshold: float) -> None:
        """Set the default taxonomy's threshold (1.99: everything is a miss)."""
        async with (
            aiohttp.ClientSession() as s,
            s.put(
                self.url + "/api/thresholds",
                json={"scope": "taxonomy", "name": "default", "threshold": threshold},
            ) as r,
        ):
            assert r.status == 200

    async def image(self, path: str) -> bytes:
        async with aiohttp.ClientSession() as s, s.get(self.url + path) as r:
            assert r.status == 200
            return await r.read()

    async def identify(self, data: bytes, **params: str) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                self.url + "/api/identify",
                data=data,
                params=params,
                headers={"Content-Type": "image/jpeg"},
            ) as r,
        ):
            assert r.status == 200
            return (await r.json())["objects"][0]  # type: ignore[no-any-return]

    async def queue_unknown(self) -> int:
        """A new review item (each from its own source: the same picture from the same
        source is one item, counted)."""
        self.sightings += 1
        obj = await self.identify(query(UNKNOWN_QUERY), source=f"cam{self.sightings}")
        return int(obj["review_id"])


@pytest.fixture()
async def server(
    aiohttp_server: Any,
    project: Project,  # noqa: F811
    embedder: Any,
) -> Server:
    app = create_app(ServeConfig(project=project), embedder=lambda c: embedder)
    srv = await aiohttp_server(app)
    return Server(f"http://127.0.0.1:{srv.port}")


def tui(server: Server) -> IdentifyApp:
    return make_tui(TuiConfig(server=server.url))


async def until(
    pilot: Pilot[Any],
    check: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float = 20.0,
) -> Any:
    """Let the app run until ``check()`` is truthy."""
    import asyncio
    import inspect

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("the UI did not get there in time")
        await pilot.pause(0.05)
