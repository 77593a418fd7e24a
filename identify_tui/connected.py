"""The app as its screens see it: one server's API client, its events and the picture
cache.

``IdentifyApp`` (``app.py``) builds on this class; it lives apart so that a screen can
declare its app's type (``app = getters.app(ConnectedApp)``, checked when it is read)
without importing the module that imports the screens.
"""

from __future__ import annotations

from textual.app import App

from server.contract import Health

from .client import ApiClient, TuiConfig
from .events import EventBuffer
from .images import ImageCache


class ConnectedApp(App[None]):
    """An app talking to one identify server."""

    def __init__(self, config: TuiConfig) -> None:
        super().__init__()
        self.config = config
        self.api = ApiClient(config)
        self.images = ImageCache(self.api)
        self.events = EventBuffer()
        self.health: Health | None = None
        """The server's latest health (polled by the app)."""
