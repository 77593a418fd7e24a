"""``GET /api/live``: the browser webcam's WebSocket.

The page sends JPEG frames as binary messages and gets exactly one JSON answer per frame
it sent: a ``result``, an ``error`` (not an image), or ``dropped``. At most one frame per
client is in flight: a frame that arrives while the previous one is still being
identified, or sooner than the client's rate allows, is dropped (and counted), never
queued, so latency stays bounded however fast the client sends. The ``dropped`` answer
(with ``reason`` and ``retry_ms``) lets a client that waits for each answer before
sending the next frame carry on instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import time
from typing import Any

from aiohttp import WSMsgType, web

from server.engine.errors import IdentifyError

from ..keys import ENGINE, SOCKETS, STATS
from ..limits import MAX_FPS_PER_CLIENT, MAX_WS_MESSAGE_BYTES

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
_client_ids = itertools.count(1)


class LiveClient:
    """One browser's state: its source name, the frame in flight, its rate."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.app = request.app
        self.ws = ws
        self.source = f"browser-{next(_client_ids)}"
        self.busy = False
        self.seq = 0
        self.last_accepted = 0.0
        self.tasks: set[asyncio.Task[None]] = set()

    def drop(self, reason: str) -> None:
        self.app[STATS].frames_dropped[reason] += 1

    async def on_frame(self, data: bytes) -> None:
        stats = self.app[STATS]
        stats.frames_received += 1
        self.seq += 1
        now = time.monotonic()
        wait_s = self.last_accepted + 1.0 / MAX_FPS_PER_CLIENT - now
        if self.busy or wait_s > 0:
            reason = "busy" if self.busy else "rate"
            self.drop(reason)
            # "busy": the answer to the frame in flight comes next; send after it.
            await self.ws.send_json(
                {
                    "type": "dropped",
                    "frame": self.seq,
                    "reason": reason,
                    "retry_ms": 0 if self.busy else math.ceil(wait_s * 1000),
                }
            )
            return
        self.busy, self.last_accepted = True, now
        task = asyncio.create_task(self.identify(self.seq, data))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def identify(self, seq: int, data: bytes) -> None:
        started = time.perf_counter()
        try:
            objects = await self.app[ENGINE].identify(
                data, source=self.source, name="frame", live=True
            )
            reply: dict[str, Any] = {
                "type": "result",
                "frame": seq,
                "objects": [o.to_json() for o in objects],
                "image_size": list(objects[0].picture) if objects else [0, 0],
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            }
        except IdentifyError as exc:
            self.drop("bad_image")
            reply = {
                "type": "error",
                "frame": seq,
                "error": {"code": exc.code, "message": exc.message},
            }
        except Exception:
            # Still one answer per frame: a page waiting for it must not wait forever.
            log.exception("live frame %d of %s failed", seq, self.source)
            self.app[STATS].server_errors += 1
            reply = {
                "type": "error",
                "frame": seq,
                "error": {"code": "internal", "message": "internal error; see the server log"},
            }
        finally:
            self.busy = False
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_json(reply)

    async def on_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
            kind = msg.get("type") if isinstance(msg, dict) else None
        except (ValueError, RecursionError):
            kind = None
        if kind == "ping":
            await self.ws.send_json({"type": "pong"})
        else:
            await self.ws.send_json(
                {
                    "type": "error",
                    "error": {
                        "code": "bad_message",
                        "message": 'send JPEG frames as binary messages, or {"type": "ping"}',
                    },
                }
            )


@routes.get("/api/live")
async def live(request: web.Request) -> web.WebSocketResponse:
    """Identify the frames a browser streams; see the module docstring."""
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_WS_MESSAGE_BYTES)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    client = LiveClient(request, ws)
    stats = request.app[STATS]
    stats.live_clients += 1
    await ws.send_json({"type": "hello", "source": client.source, "max_fps": MAX_FPS_PER_CLIENT})
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await client.on_frame(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await client.on_text(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        stats.live_clients -= 1
        for task in list(client.tasks):
            task.cancel()
        source = client.source
        with contextlib.suppress(RuntimeError):
            await request.app[ENGINE].run(lambda s: s.forget_source(source))
    return ws
