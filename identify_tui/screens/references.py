"""Classes and their references: add from a path on the server, remove, rename, merge."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import ClassVar

from textual import getters, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from server.contract import ClassInfo, ReferenceInfo

from ..client import ApiError
from ..connected import ConnectedApp
from ..widgets.banner import banner
from ..widgets.screen_bar import bottom
from ..widgets.thumbnail import Thumbnail
from .prompt import LabelPrompt

THUMB_CELLS = (26, 12)


HUB_NOTE = (
    "[b red]![/b red] wins matches that do not look alike: check its pictures, or add\n"
    "  references of the things it is taken for\n"
)
"""Said of a class the server flags as a hub (see ``server.engine.decide.hubs``)."""


class ReferencesScreen(Screen[None]):
    """One row per class; the highlighted class's first reference is shown."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add"),
        Binding("n", "rename", "Rename"),
        Binding("m", "merge", "Merge"),
        Binding("d", "remove", "Remove ref"),
        Binding("p", "promote", "Promote"),
        Binding("r", "reload", "Reload"),
    ]
    app = getters.app(ConnectedApp)

    def __init__(self) -> None:
        super().__init__()
        self.class_rows: list[ClassInfo] = []
        self.refs: list[ReferenceInfo] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield from banner()
        with Horizontal(id="refs-body"):
            yield DataTable(id="class-table", cursor_type="row")
            with Vertical(id="ref-side"):
                yield Thumbnail(*THUMB_CELLS, id="ref-thumb")
                yield Static("", id="ref-info")
        yield from bottom("references")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("class", "taxonomy", "refs")
        self.action_reload()

    @property
    def label(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.class_rows or table.cursor_row is None:
            return None
        return self.class_rows[min(table.cursor_row, len(self.class_rows) - 1)]["label"]

    @work(exclusive=True, group="classes")
    async def action_reload(self) -> None:
        try:
            classes = await self.app.api.classes()
        except ApiError:
            return
        keep = self.label
        self.class_rows = classes
        table = self.query_one(DataTable)
        table.clear()
        for c in self.class_rows:
            mark = " !" if c["hub"] else ""
            table.add_row(c["label"][:40] + mark, c["taxonomy"], str(c["references"]))
        labels = [c["label"] for c in self.class_rows]
        if keep in labels:
            table.move_cursor(row=labels.index(keep))
        self.show_class()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_class()

    @work(exclusive=True, group="class")
    async def show_class(self) -> None:
        label = self.label
        thumb = self.query_one(Thumbnail)
        info = self.query_one("#ref-info", Static)
        if label is None:
            thumb.clear()
            info.update("No classes yet.")
            return
        try:
            self.refs = await self.app.api.class_references(label)
            hub = any(c["label"] == label and c["hub"] for c in self.class_rows)
            info.update(
                f"[b]{label}[/b]\n"
                + (HUB_NOTE if hub else "")
                + "\n".join(
                    f"#{r['id']} {r['source']}{' !' if r['hub'] else ''}" for r in self.refs[:6]
                )
            )
            picture = await self.app.images.picture(
                f"/api/references/{self.refs[0]['id']}/image", *THUMB_CELLS
            )
            thumb.show(picture)
        except ApiError as exc:
            thumb.clear("no image")
            info.update(f"{label}: {exc.message}")

    async def _ask(self, question: str, value: str = "") -> str | None:
        return await self.app.push_screen_wait(
            LabelPrompt(question, [c["label"] for c in self.class_rows], value)
        )

    async def _call(self, what: str, change: Awaitable[None]) -> None:
        """Wait for a change sent to the server, say how it went, and reload."""
        try:
            await change
            self.notify(what)
        except ApiError as exc:
            self.notify(f"{what} failed: {exc.message}", severity="error")
        self.action_reload()

    @work(group="prompt")
    async def action_add(self) -> None:
        path = await self.app.push_screen_wait(
            LabelPrompt("Image file or folder on the server to add:")
        )
        if not path:
            return
        label = await self._ask("Label (empty: from the file names):")
        await self._call(f"added from {path}", self.app.api.import_references(path, label or None))

    @work(group="prompt")
    async def action_rename(self) -> None:
        old = self.label
        if old is None:
            return
        new = await self._ask(f"Rename {old!r} to:", old)
        if new and new != old:
            await self._call(f"renamed {old} to {new}", self.app.api.rename_class(old, new))

    @work(group="prompt")
    async def action_merge(self) -> None:
        old = self.label
        if old is None:
            return
        into = await self._ask(f"Merge {old!r} into:")
        if into:
            await self._call(f"merged {old} into {into}", self.app.api.merge_classes([old], into))

    @work(group="prompt")
    async def action_remove(self) -> None:
        if not self.refs:
            return
        ref = self.refs[0]
        answer = await self.app.push_screen_wait(
            LabelPrompt(f"Remove reference #{ref['id']} of {ref['label']!r}? Type yes:")
        )
        if answer == "yes":
            await self._call(f"removed #{ref['id']}", self.app.api.remove_reference(ref["id"]))

    @work(group="prompt")
    async def action_promote(self) -> None:
        """Promote a separate taxonomy's labels (at or above its promote_confidence, and
        every reviewer's) into its references."""
        taxonomies = sorted({c["taxonomy"] for c in self.class_rows})
        current = next((c["taxonomy"] for c in self.class_rows if c["label"] == self.label), "")
        name = await self.app.push_screen_wait(
            LabelPrompt("Promote the labels of taxonomy:", taxonomies, current)
        )
        if not name:
            return
        try:
            done = await self.app.api.promote(name)
            self.notify(f"{name}: {done} answer(s) promoted to references")
        except ApiError as exc:
            self.notify(f"promote {name}: {exc.message}", severity="error")
        self.action_reload()
