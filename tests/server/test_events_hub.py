"""The events hub: a slow subscriber loses its oldest events, nobody else waits."""

from __future__ import annotations

import asyncio

from server import contract
from server.http import limits
from server.http.events import EventHub


async def test_slow_subscriber_keeps_the_newest_events_within_the_backlog() -> None:
    hub = EventHub(asyncio.get_running_loop())
    slow, fast = hub.subscribe(), hub.subscribe()
    total = limits.MAX_EVENT_BACKLOG + 10
    for i in range(total):
        hub.publish({"type": "identification", "n": i})
        if i % 2 == 0:  # the fast one keeps up
            while not fast.empty():
                fast.get_nowait()
    assert slow.qsize() == limits.MAX_EVENT_BACKLOG
    assert slow.get_nowait()["n"] == 10  # the ten oldest were dropped
    assert hub.dropped == 10
    hub.unsubscribe(slow)
    assert hub.subscribers == 1


async def test_events_published_from_another_thread_arrive_as_sent() -> None:
    # The engine stamps its events (``at``) when they happen; the hub passes them on.
    hub = EventHub(asyncio.get_running_loop())
    queue = hub.subscribe()
    sent: contract.QueueEvent = {
        "type": "queue",
        "action": "added",
        "item_id": 1,
        "pending": 1,
        "at": 12.5,
    }
    await asyncio.to_thread(hub.publish_threadsafe, sent)
    assert await asyncio.wait_for(queue.get(), 5) == sent
