"""Threshold overrides set while the server runs (they outlive restarts)."""

from __future__ import annotations

from server.engine.catalog.store.base import StoreBase, now_iso


class ThresholdRows(StoreBase):
    """Per-taxonomy and per-class threshold overrides."""

    def threshold_overrides(self) -> list[tuple[str, str, float | None, float | None]]:
        """(scope, name, threshold, margin) set through the API; scope is ``taxonomy``
        or ``class``."""
        return [
            (a, b, c, d)
            for a, b, c, d in self.db.execute(
                "select scope, name, threshold, margin from threshold_overrides order by scope, name"
            )
        ]

    def set_threshold_override(
        self, scope: str, name: str, threshold: float | None, margin: float | None
    ) -> None:
        """Set (or, with both values None, clear) one override."""
        with self.transaction():
            if threshold is None and margin is None:
                self.db.conn.execute(
                    "delete from threshold_overrides where scope = ? and name = ?", [scope, name]
                )
            else:
                self.db.conn.execute(
                    "insert or replace into threshold_overrides values (?, ?, ?, ?, ?)",
                    [scope, name, threshold, margin, now_iso()],
                )
