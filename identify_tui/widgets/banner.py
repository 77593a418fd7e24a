"""The connection banner every screen shows when the server cannot be reached."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static


class ConnectionBanner(Static):
    """Says plainly when the server cannot be reached, and how to start one."""


def banner() -> ComposeResult:
    """The connection banner, hidden until there is a problem, for a screen's ``compose``."""
    widget = ConnectionBanner("", id="banner")
    widget.display = False
    yield widget
