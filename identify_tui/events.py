"""The server's events stream, read in the background and kept as a bounded buffer:
a flood of events costs memory of at most ``MAX_EVENTS`` and never blocks the UI, which
looks at the buffer on its own timers."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from dataclasses import dataclass

import aiohttp

from server.contract import DetectedObject, Event

from .client import ApiClient

MAX_EVENTS = 500
"""Identifications kept for the Live screen (newest)."""
RECONNECT_S = 2.0


@dataclass(frozen=True)
class Sighting:
    """One identified object, as the Live screen lists it."""

    at: float
    source: str
    object: DetectedObject


class EventBuffer:
    """What the screens read: recent identifications, counts, and change flags."""

    def __init__(self) -> None:
        self.recent: deque[Sighting] = deque(maxlen=MAX_EVENTS)
        self.labels: Counter[str] = Counter()
        self.total = 0
        self.unknown = 0
        self.version = 0
        """Bumped on every event; screens redraw when it changed."""
        self.queue_version = 0
        """Bumped on queue changes (items added, resolved, reopened)."""
        self.references_version = 0
        self.connected = False

    def add(self, event: Event) -> None:
        if event["type"] == "identification":
            # Every key is read before any counter moves: a malformed event changes nothing.
            seen = [
                (
                    bool(obj["matched"]),
                    str(obj["label"]),
                    Sighting(event["at"], event["source"], obj),
                )
                for obj in event["objects"]
            ]
            for matched, label, sighting in seen:
                self.total += 1
                if matched:
                    self.labels[label] += 1
                else:
                    self.unknown += 1
                self.recent.appendleft(sighting)
        elif event["type"] == "queue":
            self.queue_version += 1
        elif event["type"] == "references":
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
                        except (ValueError, KeyError, TypeError):
                            continue  # not a message of the contract: skipped, not fatal
        except (aiohttp.ClientError, OSError, TimeoutError):
            pass
        buffer.connected = False
        await asyncio.sleep(RECONNECT_S)
