"""Webhooks: every event of the outbox POSTed, signed, to each receiver that wants it,
in order, at least once, across restarts.

One thread per webhook, with its own database connection, so a receiver that hangs
holds up no other and never identification. A webhook's place in the outbox (its
cursor) moves past an event only once a receiver answered 2xx, or once the event was
kept as a dead letter after the last retry; a crash in between sends the event again,
which the receiver tells apart by its id (``X-Identify-Event-Id``, the body's ``id``).

Each delivery is signed like Stripe's: ``X-Identify-Signature: t=<unix time>,v1=<hex>``
where the hex is HMAC-SHA256, keyed by the webhook's secret, of ``<t>.`` and the body's
bytes. A receiver recomputes it, compares in constant time, and refuses an old ``t``
(a replay). ``verify_signature`` here does exactly that, for receivers written in Python.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from server import contract
from server.engine.catalog.store import OutboxEvent, Store
from server.engine.errors import IdentifyError, NotFoundError
from server.engine.loop.webhook_attempt import Outcome, post, shown_url
from server.engine.project.config import Project
from server.engine.project.outreach import WebhookConfig

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Identify-Signature"
EVENT_ID_HEADER = "X-Identify-Event-Id"
POLL_S = 1.0
"""How often a webhook looks for events it was not woken for (written by a command
while no server ran, or retries falling due)."""
FAILED_WAIT_S = 5.0
"""Wait after something unexpected failed in a webhook's own loop."""
BATCH = 100
"""Events read from the outbox at once."""
MAX_LISTED = 100
"""Dead letters listed at most (``GET /api/webhooks``)."""
MAX_RESEND = 1000
"""Dead letters one re-send request names at most."""
REPLAY_TOLERANCE_S = 300
"""How old a signature's timestamp ``verify_signature`` accepts."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``REPLAY_TOLERANCE_S``."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > REPLAY_TOLERANCE_S:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


def backoff(attempt: int, hook: WebhookConfig, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first): the
    wait doubles from ``backoff_s`` up to ``max_backoff_s``, and is drawn between half
    of that and all of it, so receivers that fail together are not retried together."""
    ceiling = min(hook.max_backoff_s, hook.backoff_s * 2 ** (attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def sentence(event: OutboxEvent) -> str:
    """An event as a line a chat channel shows (the Slack-compatible body)."""
    body = event.body
    if event.type == "alert":
        return f"identify {body.get('action')}: {body.get('message')}"
    what = f"{event.type} {event.action or ''}".strip()
    label = body.get("label") or body.get("to")
    return f"identify: {what}" + (f" ({label})" if label else "")


def payload(event: OutboxEvent, project: str, hook: WebhookConfig) -> bytes:
    """The body POSTed for ``event``."""
    if hook.format == "slack":
        doc: dict[str, object] = {"text": sentence(event)}
    else:
        doc = {
            "id": event.id,
            "type": event.type,
            "action": event.action,
            "project": project,
            "created_at": event.created_at,
            "data": event.body,
        }
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass(frozen=True)
class HookState:
    """Where a webhook stands, for health and the TUI."""

    name: str
    url: str
    state: contract.HookStateName
    """``idle`` (nothing waits), ``sending``, ``retrying``, ``no_secret`` (its variable
    is unset: events wait), ``stopped``."""
    cursor: int = 0
    waiting: int = 0
    """Events after its cursor (some may be of kinds it is not told)."""
    attempts: int = 0
    next_at: float | None = None
    last_error: str | None = None
    delivered: int = 0
    dead_letters: int = 0

    def to_json(self) -> contract.WebhookStatus:
        """As health shows it."""
        return {
            "name": self.name,
            "url": self.url,
            "state": self.state,
            "cursor": self.cursor,
            "waiting": self.waiting,
            "attempts": self.attempts,
            "next_at": self.next_at,
            "last_error": self.last_error,
            "delivered": self.delivered,
            "dead_letters": self.dead_letters,
        }


class HookWorker:
    """Delivers one webhook's events; ``run`` is its thread."""

    def __init__(
        self,
        project: Project,
        hook: WebhookConfig,
        env: Mapping[str, str],
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.project, self.hook, self.env, self.clock = project, hook, env, clock
        self.rng = rng or random.Random()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.state = HookState(hook.name, shown_url(hook.url), "idle")

    def secret(self) -> str | None:
        """The signing secret, or None while its variable is unset."""
        if self.hook.secret is not None:
            return self.hook.secret
        assert self.hook.secret_env is not None
        return self.env.get(self.hook.secret_env) or None

    def run(self) -> None:
        """Deliver until ``stopping`` is set."""
        store: Store | None = None
        try:
            while not self.stopping.is_set():
                # Cleared before the work, so a wake that comes during it is not lost.
                self.wake.clear()
                try:
                    if store is None:
                        store = Store(self.project.db_path)
                    wait = self.step(store)
                except sqlite3.Error as exc:  # locked for longer than its timeout
                    log.warning("webhook %s: database busy (%s); retrying", self.hook.name, exc)
                    wait = POLL_S
                except Exception as exc:  # never dies: says why, and tries again
                    log.exception("webhook %s failed; retrying", self.hook.name)
                    self.state = replace(self.state, state="retrying", last_error=str(exc)[:200])
                    wait = FAILED_WAIT_S
                self.wake.wait(wait)
        finally:
            self.state = replace(self.state, state="stopped")
            if store is not None:
                store.close()

    def step(self, store: Store) -> float:
        """Deliver what is due; how long to wait before looking again."""
        secret = self.secret()
        cursor = store.webhook_cursor(self.hook.name, start=store.last_event_id())
        self._show(store, "idle")
        if secret is None:
            self._show(store, "no_secret")
            return POLL_S
        self._resend(store, secret)
        while not self.stopping.is_set():
            now = self.clock()
            if cursor.next_at is not None and cursor.next_at > now:
                self._show(store, "retrying")
                return min(POLL_S, cursor.next_at - now)
            event = self._next(store, cursor.cursor)
            if event is None:
                self._show(store, "idle")
                return POLL_S
            self.state = replace(self.state, state="sending")
            outcome = self.send(event, secret)
            if outcome.ok:
                store.advance_cursor(self.hook.name, event.id, delivered=True)
                done = self.state.delivered + 1
                self.state = replace(self.state, cursor=event.id, delivered=done, attempts=0)
            else:
                attempts = cursor.attempts + 1
                if attempts >= self.hook.attempts:
                    log.warning(
                        "webhook %s: event %d kept as a dead letter after %d attempts: %s",
                        self.hook.name,
                        event.id,
                        attempts,
                        outcome.error,
                    )
                    store.add_dead_letter(self.hook.name, event.id, attempts, outcome.error)
                else:
                    wait = backoff(attempts, self.hook, self.rng)
                    store.retry_later(self.hook.name, attempts, now + wait, outcome.error)
            cursor = store.webhook_cursor(self.hook.name, start=0)
        return POLL_S

    def send(self, event: OutboxEvent, secret: str) -> Outcome:
        """One signed attempt at ``event``."""
        body = payload(event, self.project.name, self.hook)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "identify-webhooks/1",
            SIGNATURE_HEADER: sign(secret, int(self.clock()), body),
            EVENT_ID_HEADER: str(event.id),
            "X-Identify-Event": f"{event.type}.{event.action}" if event.action else event.type,
            "X-Identify-Project": self.project.name,
        }
        return post(self.hook.url, body, headers, self.hook.timeout_s)

    def _next(self, store: Store, cursor: int) -> OutboxEvent | None:
        """The next event this webhook is told; those it is not told are passed over."""
        while True:
            events = store.events_after(cursor, BATCH)
            if not events:
                return None
            for event in events:
                if self.hook.wants(event.type, event.action):
                    return event
            cursor = events[-1].id
            store.advance_cursor(self.hook.name, cursor, delivered=False)

    def _resend(self, store: Store, secret: str) -> None:
        """One attempt at each dead letter a person asked to send again."""
        for letter in store.dead_letters(self.hook.name):
            if not letter.resend:
                continue
            event = store.outbox_event(letter.event_id)
            if event is None:
                store.dead_letter_done(letter.id, False, letter.attempts, "the event is gone")
                continue
            outcome = self.send(event, secret)
            store.dead_letter_done(letter.id, outcome.ok, letter.attempts + 1, outcome.error)

    def _show(self, store: Store, state: contract.HookStateName) -> None:
        cursor = store.webhook_cursor(self.hook.name, start=0)
        self.state = HookState(
            self.hook.name,
            shown_url(self.hook.url),
            state,
            cursor.cursor,
            store.events_waiting(cursor.cursor),
            cursor.attempts,
            cursor.next_at,
            cursor.last_error,
            cursor.delivered,
            store.dead_letter_count(self.hook.name),
        )


class Deliverer:
    """Every webhook of a project, each on its own thread (see the module docstring)."""

    def __init__(
        self,
        project: Project,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        environment = os.environ if env is None else env
        self.workers = [
            HookWorker(project, hook, environment, clock) for hook in project.config.webhooks
        ]
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start delivering."""
        for worker in self.workers:
            thread = threading.Thread(
                target=worker.run, name=f"webhook-{worker.hook.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """An event was written: look now rather than at the next poll."""
        for worker in self.workers:
            worker.wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every webhook (an attempt under way is waited for up to ``timeout``)."""
        for worker in self.workers:
            worker.stopping.set()
            worker.wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def states(self) -> list[HookState]:
        """Where each webhook stands."""
        return [w.state for w in self.workers]


def dead_letter_info(store: Store) -> list[contract.DeadLetterInfo]:
    """The newest ``MAX_LISTED`` dead letters not taken since, oldest first, as the API
    shows them (each webhook's count is in its state)."""
    out: list[contract.DeadLetterInfo] = []
    for letter in store.dead_letters(limit=MAX_LISTED):
        event = store.outbox_event(letter.event_id)
        kind = "gone" if event is None else f"{event.type}.{event.action or ''}".rstrip(".")
        out.append(
            {
                "id": letter.id,
                "webhook": letter.webhook,
                "event_id": letter.event_id,
                "event_type": kind,
                "attempts": letter.attempts,
                "error": letter.error,
                "created_at": letter.created_at,
                "resend": letter.resend,
                "delivered_at": letter.delivered_at,
            }
        )
    return out


def request_resend(
    store: Store, project: Project, ids: object = None, webhook: object = None
) -> int:
    """Mark dead letters to be sent again: ``ids`` (a list of dead-letter ids), or every
    one of ``webhook``, or every one waiting; how many.

    Raises:
        IdentifyError: ids that are not a list of at most 1,000 whole numbers.
        NotFoundError: no webhook of that name in the project.
    """
    if ids is not None and (
        not isinstance(ids, list)
        or len(ids) > MAX_RESEND
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        raise IdentifyError(f"'ids' must be a list of at most {MAX_RESEND} dead-letter ids")
    if webhook is not None:
        names = [w.name for w in project.config.webhooks]
        if not isinstance(webhook, str) or webhook not in names:
            raise NotFoundError(
                f"no webhook {str(webhook)[:80]!r} (configured: {', '.join(names) or 'none'})"
            )
    return store.request_resend(ids, webhook)
