"""The screens and their F-keys, one line above the key footer, the current one lit:
the footer then has room for the screen's own keys at 80 columns."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from .footer import KeyFooter

SCREENS = (
    ("f1", "review", "Review"),
    ("f2", "references", "Refs"),
    ("f3", "thresholds", "Thresh"),
    ("f4", "live", "Live"),
    ("f5", "stats", "Stats"),
    ("f6", "clusters", "Clust"),
)
"""(key, mode, name) of every screen, in F-key order."""


class ScreenBar(Static):
    """``F1 Review  F2 Refs  F3 Thresh  F4 Live  F5 Stats  F6 Clust  q Quit``."""

    DEFAULT_CSS = """
    ScreenBar { height: 1; background: $panel; color: $text-muted; }
    """

    def __init__(self, current: str) -> None:
        parts = [
            f"[reverse][b]{key.upper()}[/b] {name}[/reverse]"
            if mode == current
            else f"[b]{key.upper()}[/b] {name}"
            for key, mode, name in SCREENS
        ]
        super().__init__(" " + "  ".join([*parts, "[b]q[/b] Quit"]), id="screen-bar")


def bottom(mode: str) -> ComposeResult:
    """The screen bar and the key footer, last in each screen's ``compose``."""
    yield ScreenBar(mode)
    yield KeyFooter()
