"""A real headless Chromium with a fake camera fed from a video file, driven over the
DevTools protocol (aiohttp's WebSocket client; no extra dependency)."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import cv2
import numpy as np

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CAMERA_FLAGS = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
"""A camera that plays the video file, allowed without a prompt."""
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)


def find_chromium() -> str | None:
    """The browser binary, if installed (``.ci/run`` installs Debian's ``chromium``)."""
    return next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)


def write_y4m(
    path: Path, scenes: Sequence[tuple[np.ndarray, int]], size: tuple[int, int], fps: int = 10
) -> Path:
    """A Y4M video (what Chromium's fake camera reads): each RGB image for its number of
    frames, resized to ``size`` (width, height; both even)."""
    w, h = size
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image, frames in scenes:
            bgr = cv2.cvtColor(
                cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR
            )
            i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
            for _ in range(frames):
                f.write(b"FRAME\n")
                f.write(i420)
    return path


class Browser:
    """``async with Browser(binary, video, profile) as b: await b.open(url)``."""

    def __init__(
        self, binary: str, video: Path | None, profile: Path, extra_flags: Sequence[str] = ()
    ) -> None:
        """``video`` None: a browser with no camera at all."""
        self.binary, self.video, self.profile = binary, video, profile
        self.extra_flags = tuple(extra_flags)
        self.proc: subprocess.Popen[bytes] | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        self.profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - starting Chromium is brief
            [
                self.binary,
                *FLAGS,
                *self.extra_flags,
                *(
                    (*CAMERA_FLAGS, f"--use-file-for-fake-video-capture={self.video}")
                    if self.video is not None
                    else ()
                ),
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.session = aiohttp.ClientSession()
        port = await self._devtools_port()
        async with self.session.get(f"http://127.0.0.1:{port}/json") as resp:
            pages = [t for t in await resp.json() if t["type"] == "page"]
        self.ws = await self.session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        return self

    async def _devtools_port(self, timeout: float = 30.0) -> int:
        marker = self.profile / "DevToolsActivePort"
        for _ in range(int(timeout / 0.1)):
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.proc.returncode}")
            if marker.exists() and (text := marker.read_text().split()):
                return int(text[0])
            await asyncio.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port")

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; returns its result."""
        assert self.ws is not None
        msg_id = next(self._ids)
        await self.ws.send_json({"id": msg_id, "method": method, "params": params})
        while True:
            reply = json.loads((await self.ws.receive()).data)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})  # type: ignore[no-any-return]

    async def open(self, url: str) -> None:
        """Navigate the page."""
        await self.send("Page.navigate", url=url)

    async def evaluate(self, expression: str, await_promise: bool = False) -> Any:
        """The JSON value of a JavaScript expression in the page (of the promise it
        gives, with ``await_promise``)."""
        result = await self.send(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"the page raised: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
