"""Identifications as they happen, newest first, with counts per label and the unknown
rate. Redrawn on a timer from a bounded buffer, so a flood of events never freezes it."""

from __future__ import annotations

import time

from textual import getters
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from ..connected import ConnectedApp
from ..widgets.banner import banner
from ..widgets.screen_bar import bottom

ROWS = 100
"""Identifications listed."""
REDRAW_S = 0.25


class LiveScreen(Screen[None]):
    """The events stream of the server."""

    app = getters.app(ConnectedApp)

    def __init__(self) -> None:
        super().__init__()
        self._drawn = -1

    def compose(self) -> ComposeResult:
        yield Header()
        yield from banner()
        yield Static("", id="live-summary")
        yield DataTable(id="live-table", cursor_type="row", zebra_stripes=True)
        yield from bottom("live")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("time", "source", "answer", "score", "margin")
        self.set_interval(REDRAW_S, self.redraw)
        self.redraw()

    def redraw(self) -> None:
        events = self.app.events
        if events.version == self._drawn:
            return
        self._drawn = events.version
        rate = events.unknown / events.total if events.total else 0.0
        top = ", ".join(f"{label} {n}" for label, n in events.labels.most_common(5))
        state = "" if events.connected else "  [b red]not connected[/]"
        self.query_one("#live-summary", Static).update(
            f"{events.total} identified, unknown {rate:.0%}{state}\n{top or 'no matches yet'}"
        )
        table = self.query_one(DataTable)
        table.clear()
        for seen in list(events.recent)[:ROWS]:
            obj = seen.object
            at = time.strftime("%H:%M:%S", time.localtime(seen.at))
            answer = obj["label"] if obj["matched"] else "unknown"
            table.add_row(
                at,
                seen.source[:18],
                str(answer)[:28],
                f"{obj['score']:.3f}",
                f"{obj['margin']:.3f}",
            )
