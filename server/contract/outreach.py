"""What leaves the process: webhooks and their dead letters (``GET /api/webhooks``),
and the alerts raised now (in ``GET /api/health``)."""

from typing import Literal, TypedDict

from .kinds import AlertName

HookStateName = Literal["idle", "sending", "retrying", "no_secret", "stopped"]


class WebhookStatus(TypedDict):
    """Where one webhook stands."""

    name: str
    url: str
    """Without its query string."""
    state: HookStateName
    """``no_secret``: its secret's environment variable is unset; events wait for it."""
    cursor: int
    """The last event it took or gave up on."""
    waiting: int
    """Events after it (some may be of kinds it is not told)."""
    attempts: int
    """Failed attempts at the next event."""
    next_at: float | None
    """When the next attempt is due (Unix time)."""
    last_error: str | None
    delivered: int
    dead_letters: int
    """Events it did not take after the last retry, not sent since."""


class DeadLetterInfo(TypedDict):
    """An event a webhook did not take after its last retry."""

    id: int
    webhook: str
    event_id: int
    event_type: str
    """``type.action`` of the event (``gone`` when it is no longer kept)."""
    attempts: int
    error: str
    created_at: str
    resend: bool
    """A re-send was asked for and is under way."""
    delivered_at: str | None


class Webhooks(TypedDict):
    """``GET /api/webhooks``."""

    webhooks: list[WebhookStatus]
    dead_letters: list[DeadLetterInfo]
    """Those not taken since, oldest first."""


class Resent(TypedDict):
    """``POST /api/webhooks/resend``: how many dead letters will be sent again."""

    resend: int


class AlertStatus(TypedDict):
    """An alert raised and not cleared."""

    name: AlertName
    value: float
    level: float
    raised_at: str
    message: str
