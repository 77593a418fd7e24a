"""The key footer every screen shows: compact, so that at 80 columns the screen's own
keys, the F-keys of the other screens and Quit all fit."""

from __future__ import annotations

from textual.widgets import Footer


class KeyFooter(Footer):
    """``Footer`` in its compact style, without the palette hint (Ctrl+P still opens the
    palette, which lists every key)."""

    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)
