"""Images in any terminal: two pixels per character cell, as the upper and lower half
of a block (``▀``), coloured with the cell's foreground and background. Works over SSH
and in tmux, with no terminal graphics protocol.

Decoding and resizing happen off the UI thread; what is kept (and cached by the
hundreds) is the small pixel array, which the garbage collector does not walk. Only the
pictures on screen are turned into lines (``Strip``: a segment and a style per cell,
under a millisecond for a crop), so a long review session does not pile up hundreds of
thousands of tracked objects that every full collection would have to visit while the
reviewer waits. The widget has a fixed size: showing a picture costs no layout."""

from __future__ import annotations

import cv2
import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

UPPER_HALF = "\u2580"


class Picture:
    """A picture fitted to ``width`` x ``height`` cells: its pixels, two rows per cell."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        """(2 * height, width, 3) uint8 RGB."""
        self.height, self.width = pixels.shape[0] // 2, pixels.shape[1]

    def strips(self) -> list[Strip]:
        """One line per cell row: upper half-blocks, top pixel as the foreground colour
        and bottom pixel as the background."""
        lines = []
        for row in range(self.height):
            top, bottom = self.pixels[2 * row].tolist(), self.pixels[2 * row + 1].tolist()
            segments = [
                Segment(
                    UPPER_HALF, Style(color=f"rgb({r1},{g1},{b1})", bgcolor=f"rgb({r2},{g2},{b2})")
                )
                for (r1, g1, b1), (r2, g2, b2) in zip(top, bottom, strict=True)
            ]
            lines.append(Strip(segments, self.width))
        return lines


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
    canvas[y0 : y0 + small.shape[0], x0 : x0 + tw] = small
    return Picture(canvas)


class Thumbnail(Widget):
    """A fixed-size half-block picture (or a short note in its middle)."""

    def __init__(
        self, width: int, height: int, *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.cells = (width, height)
        self.styles.width = width
        self.styles.height = height
        self.picture: Picture | None = None
        self._lines: list[Strip] = []
        self.note = ""

    def clear(self, note: str = "") -> None:
        self.picture, self._lines, self.note = None, [], note
        self.refresh()

    def show(self, picture: Picture) -> None:
        if picture is not self.picture:
            self.picture, self._lines = picture, picture.strips()
        self.note = ""
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.cells
        if y < len(self._lines):
            return self._lines[y]
        if self.note and y == height // 2:
            return Strip([Segment(self.note[:width].center(width))], width)
        return Strip.blank(width)
