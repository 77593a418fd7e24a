"""The store's connection: WAL, foreign keys, migrations, and one transaction at a time."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from server.engine.catalog.store.schema import MIGRATIONS
from server.engine.errors import IdentifyError


def now_iso() -> str:
    """UTC time as ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class StoreBase:
    """The connection, its migrations and the write helpers every part of the store shares."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise IdentifyError(f"database {path} is unreadable: {exc}") from None
        self.path = path
        self._depth = 0
        """Transactions open (``transaction`` nests: only the outermost commits)."""
        self._after: list[Callable[[], None]] = []
        """Called once the open transaction commits (see ``after_commit``)."""

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise IdentifyError(
                f"database schema v{version} is newer than this identify (v{len(MIGRATIONS)})"
            )
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db.conn:
                step(self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        """Number of migrations applied."""
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        self.db.conn.close()

    def _insert(self, table: str, row: dict[str, Any], replace_on: Sequence[str] = ()) -> int:
        """Insert one row (updating the row with the same ``replace_on`` key, if any) in
        one statement, inside the caller's transaction (``with store.transaction():``), and
        return its rowid. Plain SQL rather than sqlite-utils' insert and upsert, which
        look the table's schema up on every call (most of ``identify index``'s writing
        time) and commit on their own."""
        cols = ", ".join(row)
        sql = f"insert into {table} ({cols}) values ({', '.join('?' * len(row))})"
        if replace_on:
            update = ", ".join(f"{c} = excluded.{c}" for c in row if c not in replace_on)
            sql += f" on conflict ({', '.join(replace_on)}) do update set {update}"
        return int(self.db.conn.execute(sql, list(row.values())).lastrowid or 0)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction: everything written inside commits together, or nothing does.
        Nested, the inner ones join the outermost (a file's observations and the mark
        that it was labelled commit together)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self.db.conn:
                yield
        except BaseException:
            self._after.clear()
            raise
        finally:
            self._depth = 0
        after, self._after = self._after, []
        for call in after:
            call()

    def after_commit(self, call: Callable[[], None]) -> None:
        """Call ``call`` once the transaction open now commits (never, if it rolls back);
        with none open, at once. What is told of a change is told only when it holds."""
        if self._depth:
            self._after.append(call)
        else:
            call()
