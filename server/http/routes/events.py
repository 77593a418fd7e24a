"""``GET /api/events``: a WebSocket stream of identifications and changes (JSON)."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

from ..keys import EVENTS, SOCKETS
from ..limits import MAX_WS_MESSAGE_BYTES

routes = web.RouteTableDef()


@routes.get("/api/events")
async def events(request: web.Request) -> web.WebSocketResponse:
    """Send every event as one JSON text message; messages from the client are ignored
    (a ``close`` ends it)."""
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_WS_MESSAGE_BYTES)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    hub = request.app[EVENTS]
    queue = hub.subscribe()

    async def pump() -> None:
        while True:
            await ws.send_json(await queue.get())

    sender = asyncio.create_task(pump())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        hub.unsubscribe(queue)
    return ws
