"""Every piece of server state, under a typed ``web.AppKey`` (and nowhere else)."""

from __future__ import annotations

import asyncio
import weakref

from aiohttp import web

from server.engine.live.cameras import Camera
from server.engine.loop.webhooks import Deliverer

from .config import ServeConfig
from .events import EventHub
from .jobs import Jobs
from .runner import EngineRunner
from .stats import ServerStats

CONFIG = web.AppKey("config", ServeConfig)
ENGINE = web.AppKey("engine", EngineRunner)
EVENTS = web.AppKey("events", EventHub)
JOBS = web.AppKey("jobs", Jobs)
STATS = web.AppKey("stats", ServerStats)
CAMERAS = web.AppKey("cameras", list[Camera])
SOCKETS = web.AppKey("sockets", weakref.WeakSet[web.WebSocketResponse])
DELIVERER = web.AppKey("deliverer", Deliverer)
GROUPING = web.AppKey("grouping", asyncio.Lock)
"""Held while the queue is being grouped into clusters (one grouping at a time)."""
