"""What health reports beyond counters: references that have become hubs, and disk use."""

from __future__ import annotations

import time
from pathlib import Path

from server import contract
from server.engine.decide.hubs import Hub, find_hubs
from server.engine.live.context import Live
from server.engine.live.identification import Identification
from server.engine.loop import alerts, report

HUB_WINDOW = 2000
"""Recent observations the hub check looks at."""
HUB_CACHE_S = 60.0
"""How long a hub check is reused (health is asked often)."""


class HubWatch:
    """Active references whose recent matches do not look alike (see ``hubs``)."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self._last: tuple[float, list[Hub]] | None = None

    def hubs(self) -> list[contract.Hub]:
        """The hubs over the last ``HUB_WINDOW`` observations, with their current labels;
        recomputed at most every ``HUB_CACHE_S`` seconds."""
        store, now = self.live.store, self.live.clock()
        if self._last is None or now - self._last[0] >= HUB_CACHE_S:
            winners, vectors = store.recent_wins(self.live.embedder.spec.space_id, HUB_WINDOW)
            self._last = (now, find_hubs(winners, vectors))
        hubs = self._last[1]
        label_of = store.reference_labels([h.reference_id for h in hubs])
        return [
            {
                "reference_id": h.reference_id,
                "label": label_of[h.reference_id],
                "matches": h.matches,
                "agreement": round(h.agreement, 3),
                "typical": round(h.typical, 3),
            }
            for h in hubs
            if h.reference_id in label_of  # not one deleted since
        ]


def storage(live: Live) -> contract.Storage:
    """Disk use: media files by kind, the database (with its write-ahead log) and the
    vector index."""
    db = live.project.db_path
    return {
        **live.media.usage(),
        "database_bytes": _size(db),
        "database_wal_bytes": _size(db.with_name(db.name + "-wal")),
        "index_bytes": _size(live.ident.index.path),
    }


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def health(
    live: Live,
    ident: Identification,
    thresholds: contract.Thresholds,
    hubs: list[contract.Hub],
    predicted: float | None,
) -> contract.ProjectHealth:
    """Model, index, classes, the default thresholds, queue, counters, disk use, hubs."""
    stats = ident.stats
    return {
        "project": live.project.name,
        "model": live.embedder.spec.model_id,
        "projection": live.embedder.spec.projection,
        "device": live.embedder.device,
        "index_size": len(live.ident.index),
        "classes": len(set(live.ident.labels.values())),
        "thresholds": thresholds["default"],
        "queue": live.store.review_counts(),
        "identified": stats.identified,
        "queued": stats.queued,
        "gate_rejected": dict(stats.gate_rejected),
        "tracks": ident.tracker.active,
        "uptime_s": round(time.monotonic() - stats.started, 1),
        "storage": storage(live),
        "hubs": hubs,
        "reality": report.reality(live.store, predicted, live.ident.thresholds.default),
        "alerts": alerts.to_json(live.store),
    }
