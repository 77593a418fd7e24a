"""Events worth telling (the outbox), each webhook's place in it, the events a webhook
never took (dead letters), and the alerts raised now."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server.engine.catalog.store.base import StoreBase, now_iso


@dataclass(frozen=True)
class OutboxEvent:
    """One event as written with its change."""

    id: int
    type: str
    action: str | None
    body: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class WebhookCursor:
    """Where one webhook stands: the last event it was given or gave up on, and the
    attempts at the next one."""

    webhook: str
    cursor: int
    attempts: int
    next_at: float | None
    """When the next attempt is due (``time.time()``); None: now."""
    last_error: str | None
    delivered: int
    updated_at: str | None


@dataclass(frozen=True)
class DeadLetter:
    """An event a webhook did not take after its last retry."""

    id: int
    webhook: str
    event_id: int
    attempts: int
    error: str
    created_at: str
    resend: bool
    """A person asked for it to be sent again."""
    delivered_at: str | None
    """When a re-send was taken (it stays listed, as delivered)."""


@dataclass(frozen=True)
class RaisedAlert:
    """An alert raised and not yet cleared."""

    name: str
    value: float
    level: float
    raised_at: str
    message: str


def _event(row: Sequence[Any]) -> OutboxEvent:
    return OutboxEvent(int(row[0]), str(row[1]), row[2], json.loads(row[3]), str(row[4]))


_EVENT_COLS = "id, type, action, body, created_at"
_CURSOR_COLS = "webhook, cursor, attempts, next_at, last_error, delivered, updated_at"
_DEAD_COLS = "id, webhook, event_id, attempts, error, created_at, resend, delivered_at"


class OutboxRows(StoreBase):
    """The ``outbox``, ``webhook_cursors``, ``dead_letters`` and ``alerts`` tables."""

    # --- the outbox ---------------------------------------------------------------

    def add_event(self, body: Mapping[str, Any]) -> int:
        """Write one event (its ``type`` and ``action`` taken from ``body``) inside the
        caller's transaction, the one that makes the change it tells of; its id."""
        return self._insert(
            "outbox",
            {
                "type": str(body["type"]),
                "action": body.get("action"),
                "body": json.dumps(body, separators=(",", ":")),
                "created_at": now_iso(),
            },
        )

    def events_after(self, cursor: int, limit: int = 100) -> list[OutboxEvent]:
        """The events after id ``cursor``, oldest first."""
        rows = self.db.execute(
            f"select {_EVENT_COLS} from outbox where id > ? order by id limit ?",
            [cursor, limit],
        ).fetchall()
        return [_event(r) for r in rows]

    def outbox_event(self, event_id: int) -> OutboxEvent | None:
        """One event, if it is still kept."""
        row = self.db.execute(
            f"select {_EVENT_COLS} from outbox where id = ?", [event_id]
        ).fetchone()
        return None if row is None else _event(row)

    def last_event_id(self) -> int:
        """The newest event's id (0: none yet)."""
        return int(self.db.execute("select coalesce(max(id), 0) from outbox").fetchone()[0])

    def events_waiting(self, cursor: int) -> int:
        """How many events lie after ``cursor``."""
        return int(
            self.db.execute("select count(*) from outbox where id > ?", [cursor]).fetchone()[0]
        )

    def prune_outbox(self, before: str, webhooks: Sequence[str]) -> int:
        """Delete events older than ``before`` (ISO time) that every one of ``webhooks``
        has passed and none holds as a dead letter still to take; how many."""
        floor = self.db.execute(
            "select min(cursor) from webhook_cursors where webhook in "
            f"({', '.join('?' * len(webhooks))})",
            list(webhooks),
        ).fetchone()[0]
        if webhooks and floor is None:
            return 0
        with self.transaction():
            cur = self.db.conn.execute(
                "delete from outbox where created_at < ? and id <= ? and id not in"
                " (select event_id from dead_letters where delivered_at is null)",
                [before, floor if webhooks else self.last_event_id()],
            )
        return int(cur.rowcount or 0)

    # --- webhooks' places ---------------------------------------------------------

    def webhook_cursor(self, webhook: str, start: int, create: bool = True) -> WebhookCursor:
        """Where ``webhook`` stands; a webhook seen for the first time starts after
        event ``start`` (it is told what happens from when it was configured), written
        down unless ``create`` is false (a look that changes nothing)."""
        row = self.db.execute(
            f"select {_CURSOR_COLS} from webhook_cursors where webhook = ?", [webhook]
        ).fetchone()
        if row is None and not create:
            return WebhookCursor(webhook, start, 0, None, None, 0, None)
        if row is None:
            with self.transaction():
                self._insert(
                    "webhook_cursors",
                    {"webhook": webhook, "cursor": start, "updated_at": now_iso()},
                )
            return WebhookCursor(webhook, start, 0, None, None, 0, None)
        return WebhookCursor(
            str(row[0]), int(row[1]), int(row[2]), row[3], row[4], int(row[5]), row[6]
        )

    def advance_cursor(self, webhook: str, event_id: int, delivered: bool) -> None:
        """``webhook`` is done with event ``event_id`` (taken, or kept as a dead
        letter): the next one starts with no attempts."""
        with self.transaction():
            self.db.conn.execute(
                "update webhook_cursors set cursor = ?, attempts = 0, next_at = null,"
                " last_error = null, delivered = delivered + ?, updated_at = ?"
                " where webhook = ?",
                [event_id, int(delivered), now_iso(), webhook],
            )

    def retry_later(self, webhook: str, attempts: int, next_at: float, error: str) -> None:
        """An attempt at ``webhook``'s next event failed: count it, and when to retry."""
        with self.transaction():
            self.db.conn.execute(
                "update webhook_cursors set attempts = ?, next_at = ?, last_error = ?,"
                " updated_at = ? where webhook = ?",
                [attempts, next_at, error[:500], now_iso(), webhook],
            )

    # --- dead letters -------------------------------------------------------------

    def add_dead_letter(self, webhook: str, event_id: int, attempts: int, error: str) -> None:
        """Keep an event ``webhook`` did not take, and move its cursor past it, at once."""
        with self.transaction():
            self._insert(
                "dead_letters",
                {
                    "webhook": webhook,
                    "event_id": event_id,
                    "attempts": attempts,
                    "error": error[:500],
                    "created_at": now_iso(),
                    "resend": 0,
                    "delivered_at": None,
                },
                replace_on=("webhook", "event_id"),
            )
            self.advance_cursor(webhook, event_id, delivered=False)

    def dead_letter_count(self, webhook: str) -> int:
        """Dead letters of ``webhook`` not taken since."""
        row = self.db.execute(
            "select count(*) from dead_letters where webhook = ? and delivered_at is null",
            [webhook],
        ).fetchone()
        return int(row[0])

    def dead_letters(
        self, webhook: str | None = None, waiting: bool = True, limit: int = 10_000
    ) -> list[DeadLetter]:
        """Dead letters, oldest first (the newest ``limit``); ``waiting``: only those not
        taken since."""
        where, args = [], []
        if webhook is not None:
            where.append("webhook = ?")
            args.append(webhook)
        if waiting:
            where.append("delivered_at is null")
        sql = f"select {_DEAD_COLS} from dead_letters"
        if where:
            sql += " where " + " and ".join(where)
        rows = self.db.execute(sql + " order by id desc limit ?", [*args, limit]).fetchall()
        rows.reverse()
        return [
            DeadLetter(
                int(r[0]), str(r[1]), int(r[2]), int(r[3]), str(r[4]), str(r[5]), bool(r[6]), r[7]
            )
            for r in rows
        ]

    def request_resend(self, ids: Sequence[int] | None, webhook: str | None = None) -> int:
        """Mark dead letters to be sent again (``ids``, or all of ``webhook``'s, or all
        that wait); how many."""
        sql = "update dead_letters set resend = 1 where delivered_at is null"
        args: list[object] = []
        if ids is not None:
            sql += f" and id in ({', '.join('?' * len(ids))})"
            args.extend(ids)
        if webhook is not None:
            sql += " and webhook = ?"
            args.append(webhook)
        with self.transaction():
            cur = self.db.conn.execute(sql, args)
        return int(cur.rowcount or 0)

    def dead_letter_done(self, letter_id: int, delivered: bool, attempts: int, error: str) -> None:
        """A re-send of a dead letter ended: taken, or failed again (it waits to be
        asked for once more)."""
        with self.transaction():
            if delivered:
                self.db.conn.execute(
                    "update dead_letters set resend = 0, delivered_at = ? where id = ?",
                    [now_iso(), letter_id],
                )
            else:
                self.db.conn.execute(
                    "update dead_letters set resend = 0, attempts = ?, error = ? where id = ?",
                    [attempts, error[:500], letter_id],
                )

    # --- alerts -------------------------------------------------------------------

    def raised_alerts(self) -> dict[str, RaisedAlert]:
        """The alerts raised now, by name."""
        rows = self.db.execute(
            "select name, value, level, raised_at, message from alerts order by name"
        ).fetchall()
        return {
            str(r[0]): RaisedAlert(str(r[0]), float(r[1]), float(r[2]), str(r[3]), str(r[4]))
            for r in rows
        }

    def set_alert(self, alert: RaisedAlert | None, name: str) -> None:
        """Raise (``alert``) or clear (None) the alert ``name``, inside the caller's
        transaction."""
        if alert is None:
            self.db.conn.execute("delete from alerts where name = ?", [name])
            return
        self._insert(
            "alerts",
            {
                "name": alert.name,
                "value": alert.value,
                "level": alert.level,
                "raised_at": alert.raised_at,
                "message": alert.message,
            },
            replace_on=("name",),
        )
