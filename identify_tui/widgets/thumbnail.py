"""Images in any terminal: two pixels per character cell, as the upper and lower half
of a block (``▀``), coloured with the cell's foreground and background. Works over SSH
and in tmux, with no terminal graphics protocol."""

from __future__ import annotations

import cv2
import numpy as np
from rich.style import Style
from rich.text import Text
from textual.widgets import Static

UPPER_HALF = "\u2580"


def half_blocks(data: bytes, width: int, height: int) -> Text:
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
    canvas = np.full((2 * height, width, 3), 0, np.uint8)
    y0, x0 = (2 * height - small.shape[0]) // 2 // 2 * 2, (width - tw) // 2
    canvas[y0:y0 + small.shape[0], x0:x0 + tw] = small
    text = Text()
    for row in range(height):
        top, bottom = canvas[2 * row], canvas[2 * row + 1]
        for (r1, g1, b1), (r2, g2, b2) in zip(top.tolist(), bottom.tolist(), strict=True):
            text.append(UPPER_HALF, Style(color=f"rgb({r1},{g1},{b1})",
                                          bgcolor=f"rgb({r2},{g2},{b2})"))
        if row < height - 1:
            text.append("\n")
    return text


class Thumbnail(Static):
    """A fixed-size half-block picture; ``show`` takes rendered text (render it in a
    thread worker with ``half_blocks``)."""

    DEFAULT_CSS = """
    Thumbnail { width: auto; height: auto; }
    """

    def __init__(self, width: int, height: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.cells = (width, height)
        self.clear()

    def clear(self, note: str = "") -> None:
        w, h = self.cells
        lines = [" " * w] * h
        if note:
            mid = h // 2
            lines[mid] = note[:w].center(w)
        self.update("\n".join(lines))

    def show(self, picture: Text) -> None:
        self.update(picture)
