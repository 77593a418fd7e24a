"""What the annotations say: the rates to watch against the seeds' levels, drift (this
week against last), a chart per week, the labels, and auto-label coverage."""

from __future__ import annotations

import asyncio
from typing import ClassVar, Literal

from rich.text import Text
from textual import getters, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from server.contract import PeriodCounts, Stats

from ..client import ApiError
from ..connected import ConnectedApp
from ..widgets.banner import banner
from ..widgets.screen_bar import bottom
from ..wording import threshold_advice, webhook_line

REFRESH_S = 5.0
REAPPLY_POLL_S = 0.5
TypeName = Literal["confirmed", "corrected", "false_positive", "missed"]
TYPES: tuple[TypeName, ...] = ("confirmed", "corrected", "false_positive", "missed")
COLOURS: dict[TypeName, str] = {
    "confirmed": "green",
    "corrected": "yellow",
    "false_positive": "red",
    "missed": "magenta",
}
CHART_WIDTH = 40
"""Columns of the longest week's bar."""


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.0f} pts"


def week_chart(weeks: list[PeriodCounts]) -> Text:
    """One bar per week, as long as its annotations are many, coloured by type."""
    out = Text()
    most = max((w["total"] for w in weeks), default=0)
    for week in weeks:
        out.append(f"{week['period']:>9} {week['total']:>5} ")
        if most:
            for kind in TYPES:
                cells = round(CHART_WIDTH * week["counts"][kind] / most)
                out.append("█" * cells, style=COLOURS[kind])
        out.append("\n")
    out.append("          ")
    for kind in TYPES:
        out.append("█ ", style=COLOURS[kind])
        out.append(f"{kind.replace('_', ' ')}  ")
    return out


def summary(stats: Stats) -> Text:
    """The lines above the chart: queue, coverage, the rates to watch, drift."""
    q, drift = stats["queue"], stats["drift"]
    out = Text()
    out.append("queue ", style="bold")
    out.append(f"{q['pending']} pending   ")
    out.append("coverage ", style="bold")
    out.append(
        f"{pct(stats['coverage'])} auto-labelled "
        f"({stats['auto_labelled']} of {stats['observations']} identifications)\n"
    )
    out.append(f"annotations {stats['annotations']}", style="bold")
    out.append(f"   last 7 days {drift['this_week']['total']}")
    out.append(f", 7 days before {drift['last_week']['total']}\n\n")
    out.append(f"{'':<15} {'7 days':>6} {'before':>6} {'change':>8}\n", style="dim")
    for watch in stats["watch"]:
        kind = watch["type"]
        flag = {"ok": ("ok", "green"), "watch": ("WATCH", "bold red")}.get(
            watch["status"] or "", ("", "")
        )
        out.append(f"{kind.replace('_', ' '):<15} ", style=COLOURS[kind])
        out.append(f"{pct(watch['rate']):>6} {pct(drift['last_week']['rates'][kind]):>6} ")
        out.append(f"{signed(drift['change'][kind]):>8}  ")
        out.append(f"{flag[0]:<6}", style=flag[1])
        out.append(f" {watch['meaning']}\n", style="dim")
    real = stats["reality"]
    predicted = "-" if real["predicted"] is None else f"{real['predicted']:.2f}"
    out.append("\nopen-set accuracy ", style="bold")
    if real["reviewed"] is None:
        waiting = ", ".join(real["waiting_for"]) or "any review"
        out.append(f"verify {predicted}, reviewed: waiting for {waiting}\n")
    else:
        out.append(
            f"verify {predicted}, reviewed {real['reviewed']:.2f} "
            f"({real['low']:.2f}-{real['high']:.2f}, {real['reviews']} reviews)\n"
        )
    advice = threshold_advice(real["recommended"])
    if advice is not None:
        out.append(f"{advice}\n")
    if real["warning"]:
        out.append(f"{real['warning']}\n", style="bold red")
    return out


class StatsScreen(Screen[None]):
    """Numbers from ``/api/stats``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
        Binding("a", "reapply", "Re-apply"),
        Binding("w", "resend", "Re-send"),
    ]
    app = getters.app(ConnectedApp)

    def compose(self) -> ComposeResult:
        yield Header()
        yield from banner()
        with VerticalScroll():
            yield Static("", id="reapply")
            yield Static("", id="webhooks")
            yield Static("", id="stats-body")
            yield Static("", id="week-chart")
            yield DataTable(id="labels", cursor_type="row")
        yield from bottom("stats")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "label", "total", "confirmed", "corrected", "false positive", "missed"
        )
        self.set_interval(REFRESH_S, self.action_refresh)
        self.action_refresh()

    @work(exclusive=True)
    async def action_refresh(self) -> None:
        try:
            stats = await self.app.api.stats()
        except ApiError:
            return
        self.query_one("#stats-body", Static).update(summary(stats))
        hooks = [] if self.app.health is None else self.app.health["webhooks"]
        self.query_one("#webhooks", Static).update("\n".join(webhook_line(h) for h in hooks))
        self.query_one("#week-chart", Static).update(week_chart(stats["per_week"]))
        table = self.query_one(DataTable)
        table.clear()
        for row in stats["labels"]:
            counts = row["counts"]
            table.add_row(row["label"], str(row["total"]), *(str(counts[t]) for t in TYPES))

    @work(exclusive=True, group="resend")
    async def action_resend(self) -> None:
        """Send every webhook's dead letters (events not taken after the last retry)
        again, one attempt each."""
        try:
            count = await self.app.api.resend_dead_letters()
        except ApiError as exc:
            self.notify(f"re-send: {exc.message}", severity="error")
            return
        self.notify(f"{count} dead letter(s) being sent again" if count else "no dead letters")

    @work(exclusive=True, group="reapply")
    async def action_reapply(self) -> None:
        """Decide every stored answer again against the references and thresholds in
        force now (after adding references or moving a threshold), with its progress
        above the numbers; what moved is told when it ends."""
        line = self.query_one("#reapply", Static)
        try:
            job = await self.app.api.reapply_start()
            while job["status"] == "running":
                line.update(f"re-applying: {job['done']} of {job['total']} answers")
                await asyncio.sleep(REAPPLY_POLL_S)
                job = await self.app.api.job(job["id"])
            run = await self.app.api.reapplication()
        except ApiError as exc:
            line.update("")
            self.notify(f"re-apply: {exc.message}", severity="error")
            return
        line.update("")
        if job["status"] != "done" or run is None:
            self.notify(f"re-apply {job['status']}", severity="warning")
            return
        c = run["counts"]
        self.notify(
            f"re-applied to {c['seen']} answers: {c['newly_labelled']} newly labelled, "
            f"{c['relabelled']} relabelled, {c['unlabelled']} unlabelled; "
            f"{c['resolved']} queued resolved"
        )
        self.action_refresh()
