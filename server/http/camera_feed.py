"""Server-side cameras: feed each one's newest frame to the engine, one at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.engine.errors import IdentifyError
from server.engine.live.cameras import Camera

from .keys import CAMERAS, CONFIG, ENGINE, STATS
from .limits import SHUTDOWN_GRACE_S

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.02
"""How often a camera with no new frame is looked at again."""


async def feed(app: web.Application, camera: Camera) -> None:
    """Identify the camera's newest frame at most ``fps`` times a second; results go to
    the events stream and misses to the queue, like the browser's."""
    interval = 1.0 / max(camera.cfg.fps, 0.1)
    engine, seen = app[ENGINE], 0
    source = f"camera:{camera.name}"
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        frame = camera.latest(after=seen)
        if frame is None:
            await asyncio.sleep(IDLE_POLL_S)
            continue
        if frame.seq > seen + 1 and seen:
            app[STATS].frames_dropped["camera_skipped"] += frame.seq - seen - 1
        seen = frame.seq
        try:
            await engine.identify(frame.image, source=source, live=True)
        except IdentifyError as exc:
            log.warning("camera %s: %s", camera.name, exc.message)
        except Exception as exc:
            # A detector or model that raises on one frame (a driver error, a bad
            # weights file's layer) loses that frame, not the camera: said in health,
            # logged with its traceback once per distinct error, and the next frame runs.
            why = f"{type(exc).__name__}: {exc}"[:300]
            if why != camera.identify_error:
                log.exception("camera %s: identifying a frame failed: %s", camera.name, why)
            camera.failed_frames += 1
            camera.identify_error = why
        await asyncio.sleep(max(0.0, interval - (loop.time() - started)))


async def cameras_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the configured cameras and their feeds; stop them on shutdown."""
    cfg = app[CONFIG]
    cams = [Camera(c, cfg.project.file.parent).start() for c in cfg.cameras]
    app[CAMERAS].extend(cams)
    tasks = [asyncio.create_task(feed(app, c), name=f"feed:{c.name}") for c in cams]
    yield
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
    for cam in cams:
        await asyncio.to_thread(cam.stop, SHUTDOWN_GRACE_S)
