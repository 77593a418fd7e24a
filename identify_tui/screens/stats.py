"""Queue size, decisions per day, the rates to watch, auto-label coverage."""

from __future__ import annotations

from typing import ClassVar, Literal

from textual import getters, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from ..client import ApiError
from ..connected import ConnectedApp
from ..widgets.banner import banner
from ..widgets.screen_bar import bottom

REFRESH_S = 5.0
WATCH: dict[Literal["confirmed", "corrected", "false_positive"], str] = {
    "confirmed": "> 80 % is healthy",
    "corrected": "> 15 %: thresholds too loose?",
    "false_positive": "> 10 %: references too alike?",
}
"""The seed's rates to watch."""


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


class StatsScreen(Screen[None]):
    """Numbers from ``/api/stats``."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh")]
    app = getters.app(ConnectedApp)

    def compose(self) -> ComposeResult:
        yield Header()
        yield from banner()
        yield Static("", id="stats-body")
        yield DataTable(id="per-day", cursor_type="row")
        yield from bottom("stats")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "day", "confirmed", "corrected", "false positive", "skipped"
        )
        self.set_interval(REFRESH_S, self.action_refresh)
        self.action_refresh()

    @work(exclusive=True)
    async def action_refresh(self) -> None:
        try:
            stats = await self.app.api.stats()
        except ApiError:
            return
        q, rates = stats["queue"], stats["rates"]
        lines = [
            f"[b]queue[/b] {q['pending']} pending",
            (
                f"[b]coverage[/b] {pct(stats['coverage'])} auto-labelled "
                f"({stats['auto_labelled']} of {stats['observations']} identifications)"
            ),
        ]
        for key, advice in WATCH.items():
            lines.append(
                f"{key.replace('_', ' '):<15} {pct(rates[key]):>5}  ({q[key]})  [dim]{advice}[/dim]"
            )
        self.query_one("#stats-body", Static).update("\n".join(lines))
        table = self.query_one(DataTable)
        table.clear()
        for day in stats["per_day"]:
            table.add_row(
                day["day"],
                str(day["confirmed"]),
                str(day["corrected"]),
                str(day["false_positive"]),
                str(day["skipped"]),
            )
