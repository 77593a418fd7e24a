"""The live page where there is no camera to be had: it says why and what to do, and
never sits on "starting the camera…" for ever."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from server.engine.project.config import Project
from server.http.app import create_app
from server.http.config import ServeConfig

from .chromium import Browser
from .test_webcam_page import require_chromium


async def status_after(browser: Browser, url: str, seconds: float) -> str:
    await browser.open(url)
    await asyncio.sleep(seconds)
    return str(await browser.evaluate("document.getElementById('status').textContent"))


async def test_the_page_says_why_there_is_no_camera(
    aiohttp_server: Any, project: Project, embedder: Any, tmp_path: Path
) -> None:
    binary = require_chromium()
    server = await aiohttp_server(
        create_app(
            ServeConfig(project=project, allow_hosts=("camera.test",)), embedder=lambda c: embedder
        )
    )
    base = f"http://127.0.0.1:{server.port}"
    flags = ["--host-resolver-rules=MAP camera.test 127.0.0.1"]
    async with Browser(binary, None, tmp_path / "profile", flags) as browser:
        # No camera device at all.
        assert "no camera found: connect one" in await status_after(browser, base + "/", 3)
        # A page that is not a secure context gets no camera API from the browser.
        insecure = await status_after(browser, f"http://camera.test:{server.port}/", 3)
        assert f"open the page as http://localhost:{server.port}/" in insecure
        # A camera request nobody answers (a permission prompt left open).
        await browser.send("Page.enable")
        await browser.send(
            "Page.addScriptToEvaluateOnNewDocument",
            source=("MediaDevices.prototype.getUserMedia = () => new Promise(() => {});"),
        )
        waiting = await status_after(browser, base + "/", 10)
        assert waiting.startswith("still waiting for the camera: answer the browser's")
