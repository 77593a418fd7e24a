"""The banner every screen shows when the server cannot be reached, an alert is raised,
or a webhook is in trouble."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static


class ConnectionBanner(Static):
    """Says plainly when the server cannot be reached (and how to start one), and
    otherwise the alerts raised and the webhooks that cannot deliver."""


def banner() -> ComposeResult:
    """The banner, hidden until there is something to say, for a screen's ``compose``."""
    widget = ConnectionBanner("", id="banner")
    widget.display = False
    yield widget
