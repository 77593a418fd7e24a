"""Server-level counters (the engine keeps its own; health shows both)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from server import contract


@dataclass
class ServerStats:
    """What the transport did: frames dropped and why, requests refused, errors."""

    frames_received: int = 0
    frames_dropped: Counter[str] = field(default_factory=Counter)
    """Live frames not identified, by reason: ``busy`` (one already in flight),
    ``rate`` (over ``MAX_FPS_PER_CLIENT``), ``bad_image``."""
    server_errors: int = 0
    """Requests that failed with a 5xx (should stay 0)."""
    live_clients: int = 0
    writes_in_flight: Counter[str] = field(default_factory=Counter)
    """Changing requests in flight per client address (see ``MAX_WRITES_PER_CLIENT``)."""
    writes_refused: int = 0
    """Changing requests refused for being over that limit (429)."""

    def to_json(self) -> contract.ServerCounters:
        """For health."""
        return {
            "frames_received": self.frames_received,
            "frames_dropped": dict(self.frames_dropped),
            "server_errors": self.server_errors,
            "live_clients": self.live_clients,
            "writes_in_flight": sum(self.writes_in_flight.values()),
            "writes_refused": self.writes_refused,
        }
