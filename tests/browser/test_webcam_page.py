"""The live page in a real browser: headless Chromium's fake camera plays a video made of
the demo's camera-like photos; the page streams it to a real server over a WebSocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from server.engine.project.config import Project
from server.engine.vision.images import decode_image
from server.http.app import create_app
from server.http.config import ServeConfig
from tests.server.conftest import KNOWN_QUERY, UNKNOWN_QUERY, query

from .chromium import Browser, find_chromium, write_y4m

FPS = 10
KNOWN_SECONDS, UNKNOWN_SECONDS = 3, 9
"""The known thing is shown first, then an unknown one for longer than the test needs,
so the fake camera (which loops the file) does not bring either back meanwhile."""


def require_chromium() -> str:
    binary = find_chromium()
    assert binary is not None, (
        "the browser test needs Chromium: `apt-get install chromium` (.ci/run does it)"
    )
    return binary


async def poll(check: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if value := await check():
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("the page did not get there in time")


async def test_page_identifies_the_camera_and_queues_the_unknown_once(
    aiohttp_server: Any, project: Project, embedder: Any, tmp_path: Path
) -> None:
    binary = require_chromium()
    video = write_y4m(
        tmp_path / "camera.y4m",
        [
            (decode_image(query(KNOWN_QUERY)), KNOWN_SECONDS * FPS),
            (decode_image(query(UNKNOWN_QUERY)), UNKNOWN_SECONDS * FPS),
        ],
        size=(480, 360),
        fps=FPS,
    )
    app = create_app(ServeConfig(project=project), embedder=lambda c: embedder)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"

    async with Browser(binary, video, tmp_path / "profile") as browser:
        await browser.open(base + "/")

        async def state() -> dict[str, Any]:
            raw = await browser.evaluate("JSON.stringify(window.identifyState || null)")
            return (json.loads(raw) if raw else None) or {}

        async def saw_known() -> Any:
            s = await state()
            return s if "Brazil" in s.get("labels", []) else None

        first = await poll(saw_known)
        assert first["cameraStartedAt"] is not None and first["errors"] == 0

        async with server_session() as http:

            async def queued() -> Any:
                async with http.get(base + "/api/review") as resp:
                    body = await resp.json()
                return body if body["total"] else None

            listing = await poll(queued)
            assert listing["total"] == 1
            [item] = listing["items"]
            assert item["source"].startswith("browser-") and item["label"] != "Brazil"
            frames_then = (await state())["results"]
            # The unknown stays in view: more frames, still one queue entry.
            await poll(lambda: _more_results(state, frames_then + 5))
            async with http.get(base + "/api/review") as resp:
                assert (await resp.json())["total"] == 1
            async with http.get(base + "/api/health") as resp:
                health = await resp.json()
        assert health["server"]["server_errors"] == 0
        assert (await state())["lastLabel"] is None  # "unknown", honestly


async def _more_results(state: Callable[[], Awaitable[dict[str, Any]]], n: int) -> bool:
    return bool((await state())["results"] >= n)


def server_session() -> Any:
    import aiohttp

    return aiohttp.ClientSession()
