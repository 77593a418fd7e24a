"""Events worth telling, written to the outbox in the transaction of the change they
report: an event exists exactly when its change does, whether a server, ``identify
label`` or ``identify reapply`` made it, and webhooks deliver it from there (see
``loop.webhooks``). The events stream hears of it once the change has committed.

Told: review items queued, resolved or reopened; annotations created, changed or
deleted; references added, removed or moved, classes created, renamed or merged;
threshold overrides; re-applications finished; clusters found; alerts raised and
cleared. Not told: each identification and job progress, which only the live events
stream carries (a camera makes several a second, and they change nothing stored).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from server import contract
from server.engine.catalog.store import Store
from server.engine.project.outreach import EVENT_TYPES

EventSink = Callable[[contract.Event], None]
"""Receives events (identifications, queue and reference changes); called on the
engine thread, so it must only hand the event over."""

TOLD = frozenset(EVENT_TYPES)
"""The ``type`` of every event that goes to the outbox."""
KEEP_DAYS = 7.0
"""Days an event every webhook has passed is kept (for a receiver's re-send asking,
and to see what was told); one still to deliver is kept until it is."""


def tell(store: Store, event: contract.Event, sink: EventSink | None = None) -> int:
    """Write ``event`` to the outbox in the transaction open now (the one making its
    change; else its own), and hand it to ``sink`` once that commits. Its id."""
    if event["type"] not in TOLD:
        raise ValueError(f"{event['type']} events are not told through the outbox")
    with store.transaction():
        event_id = store.add_event(event)
        if sink is not None:
            store.after_commit(lambda: sink(event))
    return event_id


def queue_event(
    store: Store,
    action: contract.QueueAction,
    item_id: int,
    status: contract.ReviewStatus | None = None,
    label: str | None = None,
) -> contract.QueueEvent:
    """A review item's change, with the queue's length after it."""
    event: contract.QueueEvent = {
        "type": "queue",
        "action": action,
        "item_id": item_id,
        "pending": store.pending_count(),
        "at": time.time(),
    }
    if status is not None:
        event["status"] = status
        event["label"] = label
    return event


def prune(store: Store, webhooks: list[str], now: datetime | None = None) -> int:
    """Delete events older than ``KEEP_DAYS`` that every webhook has passed; how many."""
    before = (now or datetime.now(UTC)) - timedelta(days=KEEP_DAYS)
    return store.prune_outbox(before.isoformat(timespec="seconds"), webhooks)


def tell_added(
    store: Store,
    ref_id: int,
    label: str,
    taxonomy: str,
    new_class: bool,
    sink: EventSink | None = None,
) -> None:
    """Tell of a reference added (inside its transaction), and of its class when no
    reference had that label before."""
    at = time.time()
    tell(
        store,
        {"type": "references", "action": "added", "id": ref_id, "label": label, "at": at},
        sink,
    )
    if new_class:
        tell_added_class(store, label, taxonomy, sink)


def tell_added_class(
    store: Store, label: str, taxonomy: str, sink: EventSink | None = None
) -> None:
    """Tell of a class created (inside its transaction)."""
    created: contract.ClassEvent = {
        "type": "class",
        "action": "created",
        "label": label,
        "taxonomy": taxonomy,
        "at": time.time(),
    }
    tell(store, created, sink)


def tell_removed(store: Store, ref_id: int, label: str, sink: EventSink | None = None) -> None:
    """Tell of a reference removed (inside its transaction)."""
    event: contract.ReferencesEvent = {
        "type": "references",
        "action": "removed",
        "id": ref_id,
        "label": label,
        "at": time.time(),
    }
    tell(store, event, sink)
