"""Groups of pending unknowns: each cluster with its size, how alike its members are
and the nearest known class; the medoid and a few members as pictures; the 2-D map
drawn in characters. Name a cluster (a new class), merge it into a known one, drop the
member shown, dismiss it, or group the queue again."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual import getters, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from server.contract import Cluster, MapPointInfo

from ..client import ApiError
from ..connected import ConnectedApp
from ..widgets.banner import banner
from ..widgets.screen_bar import bottom
from ..widgets.thumbnail import Thumbnail
from .prompt import LabelPrompt

THUMB_CELLS = (26, 9)
SMALL_CELLS = (8, 4)
"""Each of the few other members shown beside the medoid."""
SMALL = 3
MAP_CELLS = (46, 7)
POLL_S = 0.5
MARKS = "0123456789abcdefghijklmnopqrstuvwxyz"


def map_text(points: list[MapPointInfo], clusters: list[Cluster], width: int, height: int) -> Text:
    """The 2-D map in ``width`` x ``height`` characters: each cell the mark of the
    listed cluster with most items there (its row's number in the table), ``·`` items
    in none."""
    marks = {c["id"]: MARKS[i % len(MARKS)] for i, c in enumerate(clusters)}
    out = Text()
    if not points:
        out.append("(nothing grouped yet)", style="dim")
        return out
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    cells: dict[tuple[int, int], dict[str, int]] = {}
    for p in points:
        col = round((p["x"] - x0) / max(x1 - x0, 1e-9) * (width - 1))
        row = round((y1 - p["y"]) / max(y1 - y0, 1e-9) * (height - 1))
        mark = marks.get(p["cluster_id"] or -1, "·")
        counts = cells.setdefault((row, col), {})
        counts[mark] = counts.get(mark, 0) + 1
    for row in range(height):
        for col in range(width):
            here = cells.get((row, col))
            if not here:
                out.append(" ")
                continue
            mark = max(here, key=lambda m: (m != "·", here[m]))
            out.append(mark, style="dim" if mark == "·" else "bold")
        out.append("\n")
    return out


class ClustersScreen(Screen[None]):
    """One row per open cluster of the newest grouping."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "name", "Name"),
        Binding("m", "merge", "Merge"),
        Binding("d", "drop", "Drop shown"),
        Binding("right", "next_member", "Next", show=False),
        Binding("left", "previous_member", "Previous", show=False),
        Binding("x", "dismiss_cluster", "Dismiss"),
        Binding("g", "regroup", "Group now"),
        Binding("r", "reload", "Reload"),
    ]
    app = getters.app(ConnectedApp)

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Cluster] = []
        self.members: list[int] = []
        self.shown = 0
        """Which member's picture is shown (0: the medoid)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield from banner()
        with Horizontal(id="clusters-body"):
            with Vertical(id="clusters-main"):
                yield DataTable(id="cluster-table", cursor_type="row")
                yield Static("", id="cluster-map")
            with Vertical(id="cluster-side"):
                yield Thumbnail(*THUMB_CELLS, id="cluster-thumb")
                with Horizontal(id="cluster-members"):
                    for n in range(SMALL):
                        yield Thumbnail(*SMALL_CELLS, id=f"cluster-member-{n}")
                yield Static("", id="cluster-info")
        yield from bottom("clusters")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("#", "size", "alike", "nearest class")
        self.action_reload()

    @property
    def current(self) -> Cluster | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None:
            return None
        return self.rows[min(table.cursor_row, len(self.rows) - 1)]

    @work(exclusive=True, group="clusters")
    async def action_reload(self) -> None:
        try:
            body = await self.app.api.clusters()
            points = await self.app.api.cluster_map()
        except ApiError:
            return
        self.rows = body["clusters"]
        table = self.query_one(DataTable)
        table.clear()
        for i, c in enumerate(self.rows):
            nearest = (
                "-"
                if c["nearest_label"] is None
                else f"{c['nearest_label'][:28]} {c['nearest_score']:.2f}"
            )
            table.add_row(
                MARKS[i % len(MARKS)], str(c["size"]), f"{c['mean_similarity']:.2f}", nearest
            )
        self.query_one("#cluster-map", Static).update(map_text(points, self.rows, *MAP_CELLS))
        if not self.rows:
            for thumb in self.query(Thumbnail):
                thumb.clear()
            self.query_one("#cluster-info", Static).update(body["message"] or "")
            return
        self.show_cluster()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.shown = 0
        self.show_cluster()

    @work(exclusive=True, group="cluster")
    async def show_cluster(self) -> None:
        cluster = self.current
        if cluster is None:
            return
        try:
            self.members = (await self.app.api.cluster(cluster["id"]))["members"]
            item = self.members[min(self.shown, len(self.members) - 1)]
            which = (
                "medoid" if self.shown == 0 else f"member {self.shown + 1} of {len(self.members)}"
            )
            self.query_one("#cluster-info", Static).update(
                f"[b]cluster {cluster['id']}[/b]: {cluster['size']} items\n"
                f"{which}: item #{item}\n←/→ other members"
            )
            picture = await self.app.images.picture(f"/api/review/{item}/image", *THUMB_CELLS)
            self.query_one("#cluster-thumb", Thumbnail).show(picture)
            others = [m for m in self.members if m != item][:SMALL]
            for n in range(SMALL):
                small = self.query_one(f"#cluster-member-{n}", Thumbnail)
                if n < len(others):
                    path = f"/api/review/{others[n]}/image"
                    small.show(await self.app.images.picture(path, *SMALL_CELLS))
                else:
                    small.clear()
        except (ApiError, ValueError):
            self.query_one("#cluster-thumb", Thumbnail).clear("no image")

    def action_next_member(self) -> None:
        if self.members:
            self.shown = (self.shown + 1) % len(self.members)
            self.show_cluster()

    def action_previous_member(self) -> None:
        if self.members:
            self.shown = (self.shown - 1) % len(self.members)
            self.show_cluster()

    async def _labels(self) -> list[str]:
        try:
            return [c["label"] for c in await self.app.api.classes()]
        except ApiError:
            return []

    @work(group="prompt")
    async def action_name(self) -> None:
        await self._label(merge=False)

    @work(group="prompt")
    async def action_merge(self) -> None:
        await self._label(merge=True)

    async def _label(self, merge: bool) -> None:
        cluster = self.current
        if cluster is None:
            return
        question = (
            f"Merge cluster {cluster['id']} ({cluster['size']} items) into the class:"
            if merge
            else f"Name cluster {cluster['id']} ({cluster['size']} items), a new class:"
        )
        suggested = cluster["nearest_label"] or "" if merge else ""
        label = await self.app.push_screen_wait(
            LabelPrompt(question, await self._labels(), suggested)
        )
        if not label:
            return
        try:
            job = await self.app.api.label_cluster(cluster["id"], label, merge)
            while job["status"] == "running":
                await asyncio.sleep(POLL_S)
                job = await self.app.api.job(job["id"])
            self.notify(f"cluster {cluster['id']}: {job['done']} item(s) labelled {label}")
        except ApiError as exc:
            self.notify(f"cluster {cluster['id']}: {exc.message}", severity="error")
        self.action_reload()

    @work(group="prompt")
    async def action_drop(self) -> None:
        cluster = self.current
        if cluster is None or not self.members:
            return
        item = self.members[min(self.shown, len(self.members) - 1)]
        try:
            await self.app.api.drop_members(cluster["id"], [item])
            self.notify(f"item #{item} taken out of cluster {cluster['id']} (it stays queued)")
        except ApiError as exc:
            self.notify(exc.message, severity="error")
        self.shown = 0
        self.action_reload()

    @work(group="prompt")
    async def action_dismiss_cluster(self) -> None:
        cluster = self.current
        if cluster is None:
            return
        try:
            await self.app.api.dismiss_cluster(cluster["id"])
            self.notify(f"cluster {cluster['id']} dismissed (its items stay queued)")
        except ApiError as exc:
            self.notify(exc.message, severity="error")
        self.action_reload()

    @work(exclusive=True, group="regroup")
    async def action_regroup(self) -> None:
        try:
            body = await self.app.api.regroup()
            self.notify(
                f"{len(body['clusters'])} cluster(s)" if body["clusters"] else body["message"] or ""
            )
        except ApiError as exc:
            self.notify(exc.message, severity="error")
        self.action_reload()
