"""The review queue, mail-client style: see the crop and the candidates, press one key,
the next item is already there."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from textual import getters, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header

from server.contract import ResolveAction, ReviewItem, ReviewPage

from ..client import ApiError, ResolveOptions
from ..connected import ConnectedApp
from ..widgets.banner import banner
from ..widgets.item_detail import ItemDetail
from ..widgets.screen_bar import bottom
from .prompt import LabelPrompt

PAGE = 200
"""Items fetched per refresh (newest first)."""
PREFETCH = 3
"""Items ahead whose pictures are fetched while the current one is shown."""
UNDO_DEPTH = 100
"""Decisions ``u`` can take back, newest first; older ones are forgotten."""
REFRESH_S = 1.0
BUSY_S = 2.0
"""While the reviewer pressed a decision key within this many seconds, the list is not
reloaded (a reload lands on the UI thread between two keypresses) unless fewer than
``LOW_WATER`` items are left in it; the reload happens at the first pause."""
LOW_WATER = 20


@dataclass
class Done:
    """A decision sent to the server, kept for undo."""

    item: ReviewItem
    index: int
    action: ResolveAction


LIST_CELLS = 29
"""Characters of a queue-list line after its selection mark: the list is 33 columns, less
its border and the table's cell padding."""
REASON_MARKS = {"below_threshold": "?", "low_margin": "~", "audit": "=", "low_confidence": "="}
"""The list's mark for why an item is queued: ``?`` unknown, ``~`` doubtful (too close
to a second class), ``=`` an accepted answer to check (a sample, or a thin margin)."""


def describe(item: ReviewItem) -> str:
    """One line of the queue list: id, why (``?`` / ``~``), best candidate, score; the
    label is shortened (with an ellipsis) so the score always shows whole."""
    best = item["candidates"][0]["label"] if item["candidates"] else "-"
    mark = REASON_MARKS.get(item["reason"], "!")
    head, score = f"{item['id']:>5} {mark} ", f" {item['score']:.3f}"
    room = max(1, LIST_CELLS - len(head) - len(score))
    label = best if len(best) <= room else best[: room - 1] + "…"
    return f"{head}{label:<{room}}{score}"


class ReviewScreen(Screen[None]):
    """Pending items; keys act on the shown item (or on every selected one)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,y", "confirm(1)", "Confirm"),
        Binding("1", "confirm(1)", "Pick 1", show=False),
        Binding("2", "confirm(2)", "Pick 2", show=False),
        Binding("3", "confirm(3)", "Pick 3", show=False),
        Binding("4", "confirm(4)", "Pick 4", show=False),
        Binding("5", "confirm(5)", "Pick 5", show=False),
        Binding("6", "confirm(6)", "Pick 6", show=False),
        Binding("7", "confirm(7)", "Pick 7", show=False),
        Binding("8", "confirm(8)", "Pick 8", show=False),
        Binding("9", "confirm(9)", "Pick 9", show=False),
        Binding("c", "correct", "Correct"),
        Binding("n", "unknown", "None"),
        Binding("x", "false_positive", "Nothing"),
        Binding("s", "skip", "Skip"),
        Binding("u", "undo", "Undo"),
        Binding("space", "select", "Select"),
        Binding("w", "whole", "Whole"),
        Binding("r", "reload", "Reload", show=False),
    ]
    app = getters.app(ConnectedApp)

    class ItemResolved(Message):
        """A decision was sent (``ok``) or failed and the item is back."""

        def __init__(self, item_id: int, action: str, ok: bool, error: str = "") -> None:
            super().__init__()
            self.item_id, self.action, self.ok, self.error = item_id, action, ok, error

    def __init__(self) -> None:
        super().__init__()
        self.items: list[ReviewItem] = []
        self.index = 0
        self.selected: set[int] = set()
        self.undo_stack: list[Done] = []
        self.total = 0
        self._seen_queue_version = -1
        self.shown_id: int | None = None
        self.in_flight: set[int] = set()
        """Items whose decision was sent and not yet answered."""
        self._last_decision = 0.0
        self.whole = False
        """The next label makes a reference of the whole picture, not the box (``w``)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield from banner()
        with Horizontal(id="review-body"):
            yield DataTable(id="queue-list", cursor_type="row", show_header=False)
            yield ItemDetail(id="detail")
        yield from bottom("review")

    def on_mount(self) -> None:
        self.query_one("#queue-list", DataTable).add_column("item", key="item")
        self.set_interval(REFRESH_S, self._maybe_reload)
        self.action_reload()

    def _maybe_reload(self) -> None:
        if self.app.events.queue_version == self._seen_queue_version:
            return
        busy = time.monotonic() - self._last_decision < BUSY_S
        if busy and len(self.items) - self.index > LOW_WATER:
            return
        self.action_reload()

    # --- loading ------------------------------------------------------------------------

    @work(exclusive=True, group="queue")
    async def action_reload(self) -> None:
        """Fetch the newest pending items (keeps the shown item shown)."""
        self._seen_queue_version = self.app.events.queue_version
        try:
            body = await self.app.api.review_page(PAGE)
        except ApiError:
            return  # the banner says why
        try:
            self._apply_page(body)
        except NoMatches:
            return  # the answer came back while the app was closing: nothing to show

    def _apply_page(self, body: ReviewPage) -> None:
        """Show a fetched page of the queue (keeps the shown item shown)."""
        keep = self.shown_id
        # Items whose decision is still on its way are not shown again.
        items = [i for i in body["items"] if i["id"] not in self.in_flight]
        old_ids, new_ids = [i["id"] for i in self.items], [i["id"] for i in items]
        same = new_ids == old_ids
        # Usually only the tail moved up (older items came into the page): append them
        # instead of rebuilding the list under the reviewer's cursor.
        tail = items[len(old_ids) :] if new_ids[: len(old_ids)] == old_ids else None
        self.items = items
        self.total = body["total"] - sum(1 for i in body["items"] if i["id"] in self.in_flight)
        self.selected &= {i["id"] for i in self.items}
        ids = [i["id"] for i in self.items]
        self.index = ids.index(keep) if keep in ids else min(self.index, max(0, len(ids) - 1))
        if tail is not None and not same:
            table = self.query_one("#queue-list", DataTable)
            for item in tail:
                table.add_row(self._line(item), key=str(item["id"]))
        elif not same:
            self.render_list()
        self.show_current()

    def _line(self, item: ReviewItem) -> str:
        return ("*" if item["id"] in self.selected else " ") + describe(item)

    def render_list(self) -> None:
        """Rebuild the list (after a reload, an undo, a failed send)."""
        table = self.query_one("#queue-list", DataTable)
        # Row keys are the item ids, so single rows can be removed or updated later.
        table.clear()
        for item in self.items:
            table.add_row(self._line(item), key=str(item["id"]))
        self._move_cursor()

    def _move_cursor(self) -> None:
        table = self.query_one("#queue-list", DataTable)
        if self.items and table.cursor_row != self.index:
            table.move_cursor(row=self.index)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Moves made by the code arrive here too, with the index already set: no-op.
        if self.items and event.cursor_row != self.index:
            self.index = min(event.cursor_row, len(self.items) - 1)
            self.show_current()

    @property
    def current(self) -> ReviewItem | None:
        return self.items[self.index] if 0 <= self.index < len(self.items) else None

    def show_current(self) -> None:
        """Show the current item from what is at hand (its pictures follow), and fetch
        the next items' pictures meanwhile."""
        item = self.current
        self.shown_id = None if item is None else item["id"]
        selected = f"  ({len(self.selected)} selected)" if self.selected else ""
        detail = self.query_one(ItemDetail)
        detail.show(item, f"{self.index + 1} of {self.total}{selected}", self.whole)
        if item is not None:
            for ahead in self.items[self.index + 1 : self.index + 1 + PREFETCH]:
                detail.prefetch(ahead)

    # --- actions ------------------------------------------------------------------------

    def _targets(self) -> list[tuple[int, ReviewItem]]:
        if self.selected:
            return [(i, it) for i, it in enumerate(self.items) if it["id"] in self.selected]
        return [(self.index, self.current)] if self.current is not None else []

    def _take(self, action: ResolveAction, options: ResolveOptions) -> None:
        """Remove the targets from the list at once (the next item shows), then tell the
        server; a failure puts the item back."""
        targets = self._targets()
        if not targets:
            self.notify("Nothing to review.", severity="warning")
            return
        self._last_decision = time.monotonic()
        if self.whole and action in ("confirm", "correct"):
            options = {**options, "region": "whole"}
        self.whole = False
        table = self.query_one("#queue-list", DataTable)
        for index, item in sorted(targets, key=lambda t: -t[0]):
            del self.items[index]
            self.total -= 1
            table.remove_row(str(item["id"]))
            self.in_flight.add(item["id"])
            self.undo_stack.append(Done(item, index, action))
            self._send(item, index, action, options)
        del self.undo_stack[:-UNDO_DEPTH]
        self.notify(self._said(action, options, [item for _, item in targets]), timeout=2)
        self.selected.clear()
        self.index = min(min(i for i, _ in targets), max(0, len(self.items) - 1))
        self._move_cursor()
        self.show_current()

    def action_whole(self) -> None:
        """Toggle what the next label makes a reference of: the box or the whole picture."""
        self.whole = not self.whole
        self.show_current()

    @staticmethod
    def _said(action: ResolveAction, options: ResolveOptions, items: list[ReviewItem]) -> str:
        """What a decision key did, in a word (the toast after each key)."""
        who = f"#{items[0]['id']}" if len(items) == 1 else f"{len(items)} items"
        if action == "confirm":
            number = options.get("candidate", 1)
            cands = items[0]["candidates"]
            label = (
                cands[number - 1]["label"]
                if len(items) == 1 and len(cands) >= number
                else f"candidate {number}"
            )
            return f"{who}: labelled {label}"
        if action == "correct":
            return f"{who}: labelled {options['label']}"
        said = {
            "unknown": "none of the known classes",
            "false_positive": "nothing there (false positive)",
        }
        return f"{who}: {said.get(action, 'skipped')}"

    @work(group="send")
    async def _send(
        self, item: ReviewItem, index: int, action: ResolveAction, options: ResolveOptions
    ) -> None:
        try:
            await self.app.api.resolve(item["id"], action, **options)
        except ApiError as exc:
            self.in_flight.discard(item["id"])
            if exc.code != "conflict":  # resolved by someone else: it stays gone
                self.items.insert(min(index, len(self.items)), item)
                self.total += 1
                self.undo_stack = [d for d in self.undo_stack if d.item["id"] != item["id"]]
                self.render_list()
                self.show_current()
            self.notify(f"#{item['id']} {action}: {exc.message}", severity="error")
            self.post_message(self.ItemResolved(item["id"], action, False, exc.message))
            return
        self.in_flight.discard(item["id"])
        self.post_message(self.ItemResolved(item["id"], action, True))

    def action_confirm(self, number: int = 1) -> None:
        item = self.current
        if not self.selected and item is not None and number > len(item["candidates"]):
            self.notify(
                f"#{item['id']} has {len(item['candidates'])} candidates", severity="warning"
            )
            return
        self._take("confirm", {"candidate": number})

    def action_unknown(self) -> None:
        """None of the known classes is right (and it is not worth a class)."""
        self._take("unknown", {})

    def action_false_positive(self) -> None:
        """Nothing of interest is there (a hard negative)."""
        self._take("false_positive", {})

    def action_skip(self) -> None:
        self._take("skip", {})

    @work(group="prompt")
    async def action_correct(self) -> None:
        if not self._targets():
            self.notify("Nothing to review.", severity="warning")
            return
        classes = []
        try:
            classes = [c["label"] for c in await self.app.api.classes()]
        except ApiError:
            pass  # complete from nothing; the label is still checked by the server
        count = len(self._targets())
        label = await self.app.push_screen_wait(
            LabelPrompt(
                f"Right label for {count} item{'s' if count > 1 else ''} "
                "(a new name makes a new class):",
                classes,
            )
        )
        if label:
            self._take("correct", {"label": label})

    def action_select(self) -> None:
        item = self.current
        if item is None:
            return
        self.selected ^= {item["id"]}
        table = self.query_one("#queue-list", DataTable)
        table.update_cell(str(item["id"]), "item", self._line(item))
        if self.index < len(self.items) - 1:
            self.index += 1
        self._move_cursor()
        self.show_current()

    @work(group="send")
    async def action_undo(self) -> None:
        if not self.undo_stack:
            self.notify("Nothing to undo.")
            return
        done = self.undo_stack.pop()
        try:
            item = await self.app.api.reopen(done.item["id"])
        except ApiError as exc:
            self.notify(f"undo #{done.item['id']}: {exc.message}", severity="error")
            return
        self.items.insert(min(done.index, len(self.items)), item)
        self.total += 1
        self.index = min(done.index, len(self.items) - 1)
        self.render_list()
        self.show_current()
        self.notify(f"#{item['id']} is back in the queue")
