"""Running the app: logging, binding, a clean and quick shutdown on Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from .app import create_app
from .config import ServeConfig
from .limits import SHUTDOWN_GRACE_S


def run_server(config: ServeConfig, announce: Callable[[str], None] = print) -> None:
    """Serve until interrupted. ``announce`` gets the URL once the port is bound."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    app = create_app(config)
    host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{host}:{config.port}/"
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        print=lambda _: announce(url),
        shutdown_timeout=SHUTDOWN_GRACE_S,
        handle_signals=True,
    )
