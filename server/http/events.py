"""The live events stream: identifications, queue and reference changes.

The engine thread publishes; each ``/api/events`` subscriber has a bounded queue, and a
slow subscriber loses its oldest events rather than slowing anyone down.
"""

from __future__ import annotations

import asyncio

from server.contract import Event

from .limits import MAX_EVENT_BACKLOG


class EventHub:
    """Fan-out of events to subscribers' queues."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self.dropped = 0
        """Events a slow subscriber lost."""

    def publish_threadsafe(self, event: Event) -> None:
        """Publish from any thread (the engine thread calls this)."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.publish, event)

    def publish(self, event: Event) -> None:
        """Publish from the event loop."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[Event]:
        """A new subscriber's queue."""
        queue: asyncio.Queue[Event] = asyncio.Queue(MAX_EVENT_BACKLOG)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        """Stop delivering to ``queue``."""
        self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        """How many are listening."""
        return len(self._subscribers)
