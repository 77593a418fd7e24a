"""Alerts: a rate past its level, raised once per breach and cleared when it is back.

Two rates are watched (``alerts:`` in the project file):

- ``unknown_rate``: the share of unknowns among the latest answers (``window`` of
  them, once ``min_answers`` exist). Many unknowns mean things nobody indexed are
  arriving, or the look of what arrives changed.
- ``confirmed_drop``: this week's share of reviewed answers confirmed, against last
  week's (each week with at least ``min_reviews`` annotations): reviewers correcting
  more than they did.

An alert is raised when its rate goes past its level and cleared only when the rate is
back past the level by ``hysteresis``, so a rate wavering about its level raises once,
not on every answer. What is raised is stored, so a restart neither raises a breach
again nor forgets one. Each raise and clear is told (``alert`` events: the events
stream, webhooks) in the transaction that records it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from server import contract
from server.engine.catalog.store import RaisedAlert, Store
from server.engine.loop.annotations import type_of
from server.engine.loop.outbox import EventSink, tell
from server.engine.loop.stats import Annotated, drift
from server.engine.project.outreach import AlertsConfig

WEEK = timedelta(days=7)
CHECK_EVERY_S = 2.0
"""Alerts are looked at no more often than this (the server looks after answers and
reviews)."""


@dataclass(frozen=True)
class Reading:
    """One watched rate now, against its level."""

    name: contract.AlertName
    value: float
    level: float
    raised: str
    """What a raise says."""
    cleared: str
    """What a clear says."""


def readings(store: Store, cfg: AlertsConfig, now: datetime) -> list[Reading]:
    """The rates that can be judged now (too few answers or reviews: left out)."""
    out = []
    if cfg.unknown_rate is not None:
        answers, unknown = store.recent_unknowns(cfg.window)
        if answers >= cfg.min_answers:
            share = unknown / answers
            out.append(
                Reading(
                    "unknown_rate",
                    share,
                    cfg.unknown_rate,
                    f"{share:.0%} of the last {answers} answers are unknown (level "
                    f"{cfg.unknown_rate:.0%}): review the queue, or look for new things "
                    "or a changed camera",
                    f"unknown answers are back to {share:.0%} of the last {answers}",
                )
            )
    if cfg.confirmed_drop is not None:
        rows = [
            Annotated(type_of(kind), datetime.fromisoformat(at), label)
            for kind, at, label in store.annotation_log(since=(now - 2 * WEEK).isoformat())
        ]
        this, last = drift(rows, now)
        if min(this.total(), last.total()) >= cfg.min_reviews:
            now_rate, then = _confirmed(this), _confirmed(last)
            fall = then - now_rate
            out.append(
                Reading(
                    "confirmed_drop",
                    fall,
                    cfg.confirmed_drop,
                    f"reviewers confirmed {now_rate:.0%} of answers this week, against "
                    f"{then:.0%} last week: add references or retrain",
                    f"the confirmed rate is back to {now_rate:.0%} ({then:.0%} last week)",
                )
            )
    return out


def _confirmed(counts: Counter[contract.AnnotationType]) -> float:
    return counts["confirmed"] / max(1, counts.total())


def check(
    store: Store, cfg: AlertsConfig, now: datetime, sink: EventSink | None = None
) -> list[contract.AlertEvent]:
    """Raise what went past its level, clear what came back (see the module
    docstring); the events told."""
    raised = store.raised_alerts()
    told: list[contract.AlertEvent] = []
    for name, alert in raised.items():
        if getattr(cfg, name, None) is None:  # its rule was turned off since
            off = Reading(
                "unknown_rate" if name == "unknown_rate" else "confirmed_drop",
                alert.value,
                alert.level,
                "",
                f"alerts.{name} is turned off",
            )
            told.append(_change(store, None, "cleared", off, sink))
    for reading in readings(store, cfg, now):
        up = reading.name in raised
        if not up and reading.value > reading.level:
            alert = RaisedAlert(
                reading.name,
                reading.value,
                reading.level,
                now.isoformat(timespec="seconds"),
                reading.raised,
            )
            told.append(_change(store, alert, "raised", reading, sink))
        elif up and reading.value <= reading.level - cfg.hysteresis:
            told.append(_change(store, None, "cleared", reading, sink))
    return told


def _change(
    store: Store,
    alert: RaisedAlert | None,
    action: str,
    reading: Reading,
    sink: EventSink | None,
) -> contract.AlertEvent:
    event: contract.AlertEvent = {
        "type": "alert",
        "action": "raised" if action == "raised" else "cleared",
        "name": reading.name,
        "value": round(reading.value, 4),
        "level": reading.level,
        "message": reading.raised if alert is not None else reading.cleared,
        "at": time.time(),
    }
    with store.transaction():
        store.set_alert(alert, reading.name)
        tell(store, event, sink)
    return event


def to_json(store: Store) -> list[contract.AlertStatus]:
    """The alerts raised now, as health shows them."""
    return [
        {
            "name": "unknown_rate" if a.name == "unknown_rate" else "confirmed_drop",
            "value": round(a.value, 4),
            "level": a.level,
            "raised_at": a.raised_at,
            "message": a.message,
        }
        for a in store.raised_alerts().values()
    ]
