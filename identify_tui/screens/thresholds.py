"""Thresholds per taxonomy and per class, and what moving them would do to coverage
(share of identifications auto-labelled) and precision (share of the reviewed items
above the threshold whose best candidate the reviewer confirmed).

Each row shows threshold/margin for crops and for whole pictures (``identify match``,
live frames), which ``identify verify`` calibrates apart; a value set here applies to
both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import getters, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from server.contract import (
    ThresholdCurve,
    ThresholdScope,
)

from ..client import ApiError
from ..connected import ConnectedApp
from ..widgets.banner import banner
from ..widgets.screen_bar import bottom

STEP = 0.01


@dataclass
class Row:
    scope: ThresholdScope
    name: str
    taxonomy: str
    threshold: float
    margin: float
    picture: tuple[float, float]
    """(threshold, margin) for whole pictures."""


class ThresholdsScreen(Screen[None]):
    """Step a threshold with the keys; the curve follows; ``a`` applies it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign", "step(1)", "Thr +"),
        Binding("minus", "step(-1)", "Thr -"),
        Binding("right_square_bracket", "step_margin(1)", "Margin +"),
        Binding("left_square_bracket", "step_margin(-1)", "Margin -"),
        Binding("a", "apply", "Apply"),
        Binding("delete,backspace", "clear", "Clear"),
        Binding("r", "reload", "Reload", show=False),
    ]
    app = getters.app(ConnectedApp)

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self.curve: ThresholdCurve | None = None
        """The last curve the server sent."""
        self.dirty = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield from banner()
        with Horizontal(id="thr-body"):
            yield DataTable(id="thr-table", cursor_type="row")
            yield Static("", id="curve")
        yield from bottom("thresholds")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("scope", "name", "crops", "pictures")
        self.action_reload()

    @property
    def row(self) -> Row | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None:
            return None
        return self.rows[min(table.cursor_row, len(self.rows) - 1)]

    @work(exclusive=True, group="load")
    async def action_reload(self) -> None:
        api = self.app.api
        try:
            thr = await api.thresholds()
        except ApiError:
            return
        rows = [
            Row(
                "taxonomy",
                name,
                name,
                v["threshold"],
                v["margin"],
                (v["picture"]["threshold"], v["picture"]["margin"]),
            )
            for name, v in thr["taxonomies"].items()
        ]
        rows += [
            Row(
                "class",
                label,
                v["taxonomy"],
                v["in_force"]["threshold"],
                v["in_force"]["margin"],
                (v["picture"]["threshold"], v["picture"]["margin"]),
            )
            for label, v in thr["classes"].items()
        ]
        self.rows, self.dirty = rows, False
        self.render_table()
        self.render_curve()

    def render_table(self) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row or 0
        table.clear()
        for r in self.rows:
            table.add_row(
                r.scope,
                r.name[:30],
                f"{r.threshold:.2f}/{r.margin:.2f}",
                f"{r.picture[0]:.2f}/{r.picture[1]:.2f}",
            )
        if self.rows:
            table.move_cursor(row=min(cursor, len(self.rows) - 1))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.render_curve()

    def render_curve(self) -> None:
        """Ask the server for the curve around the highlighted row's values, then draw it."""
        row = self.row
        box = self.query_one("#curve", Static)
        if row is None:
            box.update("No thresholds.")
            return
        self.fetch_curve(row, self.dirty)

    @work(exclusive=True, group="curve")
    async def fetch_curve(self, row: Row, dirty: bool) -> None:
        box = self.query_one("#curve", Static)
        head = (
            f"[b]{row.name}[/b]  threshold {row.threshold:.2f}  margin {row.margin:.2f}"
            f"{'  [b yellow](not applied)[/]' if dirty else ''}\n"
        )
        if self.curve is None:
            box.update(head + "loading…")
        label, taxonomy = (row.name, None) if row.scope == "class" else (None, row.name)
        try:
            data = await self.app.api.threshold_curve(
                taxonomy=taxonomy, label=label, threshold=row.threshold, margin=row.margin
            )
        except ApiError as exc:
            box.update(head + exc.message)
            return
        self.curve = data
        lines = [head, "thr    coverage  precision  judged"]
        for p in data["points"]:
            t, cov, prec = p["threshold"], p["coverage"], p["precision"]
            mark = ">" if abs(t - row.threshold) < 1e-9 else " "
            cov_s = "-" if cov is None else f"{cov:6.0%}"
            prec_s = "-" if prec is None else f"{prec:6.0%}"
            lines.append(f"{mark}{t:5.2f}  {cov_s:>8}  {prec_s:>9}  {p['judged']:>8}")
        lines.append(
            f"\n{data['observed']} identifications, "
            f"{data['reviewed']} reviewed in all ({row.name}).\n"
            "judged: reviewed items a row's threshold would accept (its "
            "precision is theirs)"
        )
        box.update("\n".join(lines))

    def action_step(self, direction: int) -> None:
        row = self.row
        if row is not None:
            row.threshold = round(min(2.0, max(0.0, row.threshold + direction * STEP)), 4)
            self._set_explicitly(row)
            self.render_table()
            self.render_curve()

    def action_step_margin(self, direction: int) -> None:
        row = self.row
        if row is not None:
            row.margin = round(min(1.0, max(0.0, row.margin + direction * STEP)), 4)
            self._set_explicitly(row)
            self.render_table()
            self.render_curve()

    def _set_explicitly(self, row: Row) -> None:
        """A stepped row will be applied as explicit values, which pictures follow too."""
        row.picture = (row.threshold, row.margin)
        self.dirty = True

    @work(group="apply")
    async def action_apply(self) -> None:
        row = self.row
        if row is None:
            return
        await self._put(
            row,
            (row.threshold, row.margin),
            f"{row.name}: {row.threshold:.2f} / {row.margin:.2f} applied",
        )

    @work(group="apply")
    async def action_clear(self) -> None:
        row = self.row
        if row is not None:
            await self._put(row, (None, None), f"{row.name}: back to the project's thresholds")

    async def _put(self, row: Row, values: tuple[float | None, float | None], done: str) -> None:
        """Set (or with ``(None, None)`` clear) the row's override, then reload."""
        try:
            await self.app.api.set_threshold(row.scope, row.name, *values)
            self.notify(done)
        except ApiError as exc:
            self.notify(f"not applied: {exc.message}", severity="error")
        self.action_reload()
