"""The server's events stream, read in the background and kept as a bounded buffer:
a flood of events costs memory of at most ``MAX_EVENTS`` and never blocks the UI, which
looks at the buffer on its own timers."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from typing import Any

import aiohttp

from .client import ApiClient

MAX_EVENTS = 500
"""Identifications kept for the Live screen (newest)."""
RECONNECT_S = 2.0


class EventBuffer:
    """What the screens read: recent identifications, counts, and change flags."""

    def __init__(self) -> None:
        self.recent: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.labels: Counter[str] = Counter()
        self.total = 0
        self.unknown = 0
        self.version = 0
        """Bumped on every event; screens redraw when it changed."""
        self.queue_version = 0
        """Bumped on queue changes (items added, resolved, reopened)."""
        self.references_version = 0
        self.connected = False

    def add(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "identification":
            for obj in event.get("objects", []):
                self.total += 1
                if obj.get("matched"):
                    self.labels[str(obj.get("label"))] += 1
                else:
                    self.unknown += 1
                self.recent.appendleft(
                    {"at": event.get("at"), "source": event.get("source"), **obj}
                )
        elif kind == "queue":
            self.queue_version += 1
        elif kind == "references":
            self.references_version += 1
        self.version += 1


async def follow(client: ApiClient, buffer: EventBuffer) -> None:
    """Read events forever, reconnecting when the server goes away."""
    while True:
        try:
            async with client.session.ws_connect(client.events_url(), heartbeat=20) as ws:
                buffer.connected = True
                buffer.queue_version += 1  # catch up on what happened while away
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        try:
                            buffer.add(json.loads(msg.data))
                        except ValueError:
                            continue
        except (aiohttp.ClientError, OSError, TimeoutError):
            pass
        buffer.connected = False
        await asyncio.sleep(RECONNECT_S)
