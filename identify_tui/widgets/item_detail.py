"""One review item in full: its picture with the box, what is known of it, and its
candidates beside their references' pictures (filled in as they arrive)."""

from __future__ import annotations

from textual import getters, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from server.contract import ReviewItem

from ..client import ApiError
from ..connected import ConnectedApp
from .thumbnail import Thumbnail

CROP_CELLS = (20, 10)
CANDIDATE_CELLS = (8, 4)
SHOWN_CANDIDATES = 3
"""Candidates shown with a picture; the rest are listed as text."""
LISTED_CANDIDATES = 9
"""Candidates shown at all (one key each)."""


def picture_paths(item: ReviewItem) -> list[tuple[str, int, int, str]]:
    """(image path, width, height, thumbnail selector) of every picture shown for
    ``item``: its own, then its first candidates' references."""
    out = [(f"/api/review/{item['id']}/image?box=1", *CROP_CELLS, "#crop")]
    for n, cand in enumerate(item["candidates"][:SHOWN_CANDIDATES], start=1):
        out.append(
            (f"/api/references/{cand['reference_id']}/image", *CANDIDATE_CELLS, f"#cand-{n}")
        )
    return out


def makes(item: ReviewItem, whole: bool) -> str:
    """What a label will make a reference of, and how to change it (``w``)."""
    if item["box"] is None:
        return "label -> the whole picture"
    if whole:
        return "label -> [b]whole picture[/b] (w: box)"
    sure = "[yellow]doubtful[/] box" if item["region"] == "doubtful" else "box"
    return f"label -> the {sure} (w: whole)"


class ItemDetail(Vertical):
    """The shown item (or a note that there is none); its pictures load in the
    background, from the app's picture cache when they are there already."""

    app = getters.app(ConnectedApp)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown_id: int | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="crop-row"):
            yield Thumbnail(*CROP_CELLS, id="crop")
            yield Static("", id="item-info")
        with VerticalScroll(id="candidates"):
            for n in range(1, SHOWN_CANDIDATES + 1):
                yield Horizontal(
                    Thumbnail(*CANDIDATE_CELLS, id=f"cand-{n}"),
                    Static("", id=f"cand-text-{n}", classes="candidate-text"),
                    id=f"cand-row-{n}",
                    classes="candidate",
                )
            yield Static("", id="more-candidates")
        yield Static("", id="empty")

    def show(self, item: ReviewItem | None, position: str, whole: bool) -> None:
        """Show ``item`` from what is at hand (``position``: where it is in the queue;
        ``whole``: a label makes a reference of the whole picture), pictures to follow."""
        empty = self.query_one("#empty", Static)
        parts = [self.query_one("#crop-row"), self.query_one("#candidates")]
        if item is None:
            self.shown_id = None
            empty.update("Nothing to review. Misses appear here as the server sees them.")
            empty.display = True
            for part in parts:
                part.display = False
            return
        if empty.display:  # only when it changes: a display change costs a layout
            empty.display = False
            for part in parts:
                part.display = True
        self.shown_id = item["id"]
        when = (item["created_at"] or "")[5:16].replace("T", " ")
        self.query_one("#item-info", Static).update(
            layout=False,
            content=f"[b]#{item['id']}[/b]  {position}\n"
            f"source {str(item['source'])[:24]}\nseen   {when} UTC\n"
            f"reason {item['reason']}\nscore  {item['score']:.3f}\nmargin {item['margin']:.3f}"
            f"{'  (' + str(item['seen']) + ' times)' if item['seen'] > 1 else ''}\n"
            f"{makes(item, whole)}",
        )
        self._show_candidates(item)
        self._load_pictures(item)

    def prefetch(self, item: ReviewItem) -> None:
        """Start fetching the pictures of an item shown soon."""
        for path, w, h, _ in picture_paths(item):
            self.app.images.prefetch(path, w, h)

    def _show_candidates(self, item: ReviewItem) -> None:
        cands = item["candidates"][:LISTED_CANDIDATES]
        for n in range(1, SHOWN_CANDIDATES + 1):
            row = self.query_one(f"#cand-row-{n}")
            if row.display != (n <= len(cands)):
                row.display = n <= len(cands)
            if n <= len(cands):
                c = cands[n - 1]
                self.query_one(f"#cand-text-{n}", Static).update(
                    f"[b]{n}[/b] {c['label']}  {c['score']:.3f}", layout=False
                )
        self.query_one("#more-candidates", Static).update(
            layout=False,
            content="\n".join(
                f"[b]{n}[/b] {c['label']}  {c['score']:.3f}"
                for n, c in enumerate(cands, start=1)
                if n > SHOWN_CANDIDATES
            ),
        )

    @work(exclusive=True, group="pictures")
    async def _load_pictures(self, item: ReviewItem) -> None:
        images = self.app.images
        for path, w, h, selector in picture_paths(item):
            widgets = self.query(selector)
            if not widgets:
                continue
            thumb = widgets.first(Thumbnail)
            cached = images.cached(path, w, h)
            if cached is not None:
                thumb.show(cached)
                continue
            thumb.clear("…")
            try:
                picture = await images.picture(path, w, h)
            except ApiError:
                thumb.clear("no image")
                continue
            if self.shown_id == item["id"]:
                thumb.show(picture)
