"""The sections of a project file that reach beyond the process: webhooks, alerts, and
the grouping of unknowns into clusters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

EVENT_TYPES = (
    "queue",
    "annotation",
    "references",
    "class",
    "thresholds",
    "reapply",
    "cluster",
    "alert",
)
"""The kinds of events a webhook can be told (``type``, or ``type.action`` for one action
of it, e.g. ``queue.added``)."""
WEBHOOK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class WebhookConfig:
    """A receiver of events: each event POSTed as JSON, signed (HMAC-SHA256 over the
    timestamp and the body), retried with backoff until a 2xx, in order."""

    name: str
    """Names the webhook in health, the TUI and its dead letters (letters, digits,
    ``_ . -``); renaming it starts it afresh from the newest event."""
    url: str
    """``http://`` or ``https://``; redirects are not followed (a 3xx is a failure)."""
    secret_env: str | None = None
    """The environment variable holding the signing secret (preferred: the secret stays
    out of the project file). While it is unset the webhook waits, keeping its events."""
    secret: str | None = None
    """The signing secret itself, when an environment variable will not do."""
    events: tuple[str, ...] = EVENT_TYPES
    """Which events it is told: ``type`` or ``type.action`` (see the README)."""
    format: Literal["json", "slack"] = "json"
    """``json``: the event itself; ``slack``: ``{"text": ...}``, a sentence a chat
    channel can show (for alerts above all)."""
    attempts: int = 8
    """Attempts at one event before it becomes a dead letter."""
    backoff_s: float = 1.0
    """Wait before the second attempt; each later wait doubles, with jitter."""
    max_backoff_s: float = 300.0
    """Longest wait between attempts."""
    timeout_s: float = 10.0
    """An attempt that takes longer (connecting, sending, answering) has failed."""

    def __post_init__(self) -> None:
        if not WEBHOOK_NAME_RE.match(self.name):
            raise ValueError(
                f"webhook name {self.name[:80]!r} may hold only letters, digits, '_', '-', '.'"
            )
        parts = urlsplit(self.url)
        try:
            port = parts.port  # out of range or not a number: ValueError
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            raise ValueError(
                f"webhook {self.name}: url {self.url[:200]!r} is not http(s)://host[:port]/…"
            )
        if parts.username or parts.password:
            raise ValueError(f"webhook {self.name}: put no user or password in the url")
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError(
                f"webhook {self.name}: give exactly one of secret_env (an environment "
                "variable's name, preferred) and secret: every delivery is signed"
            )
        if self.secret is not None and len(self.secret) < 16:
            raise ValueError(f"webhook {self.name}: the secret must be at least 16 characters")
        if self.secret_env is not None and not ENV_NAME_RE.match(self.secret_env):
            raise ValueError(f"webhook {self.name}: {self.secret_env!r} is not a variable name")
        for kind in self.events:
            if kind.split(".", 1)[0] not in EVENT_TYPES or kind.endswith("."):
                raise ValueError(
                    f"webhook {self.name}: unknown event {kind!r} (known: {', '.join(EVENT_TYPES)})"
                )
        if self.attempts < 1:
            raise ValueError(f"webhook {self.name}: attempts must be at least 1")
        if not 0 < self.backoff_s <= self.max_backoff_s:
            raise ValueError(f"webhook {self.name}: need 0 < backoff_s <= max_backoff_s")
        if not 0 < self.timeout_s <= 120:
            raise ValueError(f"webhook {self.name}: timeout_s must be in (0, 120]")

    def wants(self, kind: str, action: str | None) -> bool:
        """Whether an event of ``kind`` (and ``action``) is told to this webhook."""
        return kind in self.events or f"{kind}.{action}" in self.events


@dataclass(frozen=True)
class AlertsConfig:
    """When an alert is raised: once per breach, cleared when back past the level by
    ``hysteresis`` (so a rate that wavers about the level does not flap)."""

    unknown_rate: float | None = 0.5
    """Raise when more than this share of the last ``window`` answers are unknown;
    null: never."""
    window: int = 200
    """Answers (objects decided, newest first) the unknown rate is taken over."""
    min_answers: int = 50
    """Fewest answers in the window before the unknown rate is judged."""
    confirmed_drop: float | None = 0.10
    """Raise when this week's confirmed rate is below last week's by more than this
    (a share: 0.10 is ten points); null: never."""
    min_reviews: int = 20
    """Fewest annotations in each of the two weeks before their rates are compared."""
    hysteresis: float = 0.05
    """How far back past its level a rate must come before its alert clears."""

    def __post_init__(self) -> None:
        for name in ("unknown_rate", "confirmed_drop"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                raise ValueError(f"alerts.{name} must be between 0 and 1 (or null: off)")
        if self.window < 1 or not 1 <= self.min_answers <= self.window:
            raise ValueError("alerts: need 1 <= min_answers <= window")
        if self.min_reviews < 1:
            raise ValueError("alerts.min_reviews must be at least 1")
        if not 0.0 <= self.hysteresis < 0.5:
            raise ValueError("alerts.hysteresis must be in [0, 0.5)")
        for name in ("unknown_rate", "confirmed_drop"):
            value = getattr(self, name)
            if value is not None and self.hysteresis >= value:
                raise ValueError(f"alerts.hysteresis must be below alerts.{name} ({value})")


@dataclass(frozen=True)
class ClustersConfig:
    """Grouping the pending unknowns (HDBSCAN) so that a new thing seen many times
    shows as one group, to be named once."""

    min_cluster_size: int = 5
    """Fewest items a group needs; fewer alike are left ungrouped."""
    regroup_growth: float = 0.25
    """The server groups the queue again when it has grown by this share since the
    last grouping (and at least ``min_cluster_size`` items); 0: only on request."""
    max_items: int = 20000
    """The newest pending unknowns grouped at most (HDBSCAN's time grows with them)."""

    def __post_init__(self) -> None:
        if self.min_cluster_size < 2:
            raise ValueError("clusters.min_cluster_size must be at least 2")
        if not 0.0 <= self.regroup_growth <= 10.0:
            raise ValueError("clusters.regroup_growth must be between 0 and 10")
        if self.max_items < self.min_cluster_size:
            raise ValueError("clusters.max_items must be at least min_cluster_size")
