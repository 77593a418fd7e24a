"""Images in any terminal: two pixels per character cell, as the upper and lower half
of a block (``▀``), coloured with the cell's foreground and background. Works over SSH
and in tmux, with no terminal graphics protocol.

The picture is turned into ready-made lines (``Strip``) off the UI thread, and the
widget has a fixed size, so showing one costs no layout and no re-styling."""

from __future__ import annotations

import cv2
import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

UPPER_HALF = "\u2580"


class Picture:
    """A rendered picture: one ``Strip`` per terminal row."""

    def __init__(self, lines: list[Strip], width: int) -> None:
        self.lines = lines
        self.width = width


def half_blocks(data: bytes, width: int, height: int) -> Picture:
    """An encoded image as ``width`` x ``height`` cells (aspect kept, centred).

    Raises:
        ValueError: not an image.
    """
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if array is None:
        raise ValueError("not an image")
    rgb = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    scale = min(width / w, 2 * height / h)
    tw, th = max(1, round(w * scale)), max(2, round(h * scale))
    small = cv2.resize(rgb, (tw, th + th % 2), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((2 * height, width, 3), np.uint8)
    y0, x0 = (2 * height - small.shape[0]) // 4 * 2, (width - tw) // 2
    canvas[y0:y0 + small.shape[0], x0:x0 + tw] = small
    lines = []
    for row in range(height):
        top, bottom = canvas[2 * row].tolist(), canvas[2 * row + 1].tolist()
        segments = [Segment(UPPER_HALF, Style(color=f"rgb({r1},{g1},{b1})",
                                              bgcolor=f"rgb({r2},{g2},{b2})"))
                    for (r1, g1, b1), (r2, g2, b2) in zip(top, bottom, strict=True)]
        lines.append(Strip(segments, width))
    return Picture(lines, width)


class Thumbnail(Widget):
    """A fixed-size half-block picture (or a short note in its middle)."""

    def __init__(self, width: int, height: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.cells = (width, height)
        self.styles.width = width
        self.styles.height = height
        self.picture: Picture | None = None
        self.note = ""

    def clear(self, note: str = "") -> None:
        self.picture, self.note = None, note
        self.refresh()

    def show(self, picture: Picture) -> None:
        self.picture, self.note = picture, ""
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.cells
        if self.picture is not None and y < len(self.picture.lines):
            return self.picture.lines[y]
        if self.note and y == height // 2:
            return Strip([Segment(self.note[:width].center(width))], width)
        return Strip.blank(width)
