"""The one factory of the HTTP server: ``create_app(config)``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Callable

from aiohttp import WSCloseCode, web

from server import contract
from server.engine.errors import ConflictError
from server.engine.live.service import Service
from server.engine.loop.alerts import CHECK_EVERY_S
from server.engine.loop.outbox import TOLD
from server.engine.loop.webhooks import Deliverer
from server.engine.project.lock import ProjectLock
from server.engine.vision.embedders import Embedder, project_embedder

from . import middlewares
from .camera_feed import cameras_ctx
from .config import ServeConfig
from .events import EventHub
from .jobs import Jobs
from .keys import CAMERAS, CONFIG, DELIVERER, ENGINE, EVENTS, GROUPING, JOBS, SOCKETS, STATS
from .limits import (
    COLLECT_INTERVAL_S,
    INDEX_SAVE_INTERVAL_S,
    MAX_REQUEST_BYTES,
    SHUTDOWN_GRACE_S,
)
from .routes import annotation as annotation_routes
from .routes import clusters as cluster_routes
from .routes import (
    events,
    health,
    identify,
    jobs,
    label,
    live,
    pages,
    reapply,
    references,
    review,
    seed,
    taxonomies,
    thresholds,
    webhooks,
)
from .runner import EngineRunner
from .stats import ServerStats

log = logging.getLogger(__name__)

ROUTE_MODULES = (
    health,
    identify,
    references,
    review,
    annotation_routes,
    taxonomies,
    label,
    reapply,
    thresholds,
    webhooks,
    cluster_routes,
    jobs,
    events,
    live,
    pages,
    seed,
)
"""Every part of the API; each module holds its ``routes``."""

EmbedderFactory = Callable[[ServeConfig], Embedder]


def _default_embedder(cfg: ServeConfig) -> Embedder:
    return project_embedder(cfg.project.config)


def create_app(
    config: ServeConfig, embedder: EmbedderFactory = _default_embedder
) -> web.Application:
    """The aiohttp application for one project.

    Heavy resources open in cleanup contexts, in order: the engine (model, database,
    index, on its own thread), the periodic index saver, the cameras; they close in
    reverse order, after every open WebSocket has been told the server is going away.
    ``embedder`` lets tests share one loaded model between apps.
    """
    app = web.Application(
        client_max_size=MAX_REQUEST_BYTES,
        middlewares=[
            middlewares.errors,
            middlewares.same_origin,
            middlewares.auth,
            middlewares.client_limits,
        ],
    )
    app[CONFIG] = config
    app[STATS] = ServerStats()
    app[CAMERAS] = []
    app[SOCKETS] = weakref.WeakSet()
    app[GROUPING] = asyncio.Lock()
    for module in ROUTE_MODULES:
        app.add_routes(module.routes)

    async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
        hub = app[EVENTS] = EventHub(asyncio.get_running_loop())
        app[JOBS] = Jobs(app[EVENTS])
        project = config.project
        deliverer = app[DELIVERER] = Deliverer(project)

        def sink(event: contract.Event) -> None:
            hub.publish_threadsafe(event)
            if event["type"] in TOLD:
                deliverer.wake()

        # One writer: `identify index` and friends are refused while this runs.
        lock = ProjectLock(
            project.data_dir, f"identify serve on http://{config.host}:{config.port}"
        ).acquire()
        runner = EngineRunner(config.workers)
        try:
            await runner.open(lambda: Service.open(project, embedder(config), sink))
            app[ENGINE] = runner
            deliverer.start()  # after the engine brought the database's schema up to date
            yield
        finally:
            await asyncio.to_thread(deliverer.stop)
            await app[JOBS].close()
            await runner.close()
            lock.release()

    app.cleanup_ctx.extend([engine_ctx, saver_ctx, cameras_ctx])
    app.on_shutdown.append(_close_sockets)
    return app


async def saver_ctx(app: web.Application) -> AsyncIterator[None]:
    """Save a changed index every few seconds; apply the storage retention policy
    (pictures, and events every webhook has passed) at start and every
    ``COLLECT_INTERVAL_S``; look at the alerts every ``CHECK_EVERY_S``, and group the
    queue again when it has grown by ``clusters.regroup_growth``."""
    tasks = [
        asyncio.create_task(_saving(app), name="index-saver"),
        asyncio.create_task(_watching(app), name="alerts"),
    ]
    yield
    for running in tasks:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def _saving(app: web.Application) -> None:
    collected_at = -COLLECT_INTERVAL_S
    while True:
        now = asyncio.get_running_loop().time()
        if now - collected_at >= COLLECT_INTERVAL_S:
            collected_at = now
            try:
                done = await app[ENGINE].run(lambda s: s.collect())
                await app[ENGINE].run(lambda s: s.prune_outbox())
            except Exception:  # a file it may not delete: saving goes on
                log.exception("storage collection failed; retried in an hour")
            else:
                if done.pictures_expired or done.orphans:
                    log.info("storage: %s", done.to_json())
        await asyncio.sleep(INDEX_SAVE_INTERVAL_S)
        await app[ENGINE].run(lambda s: s.save())


async def _watching(app: web.Application) -> None:
    while True:
        await asyncio.sleep(CHECK_EVERY_S)
        try:
            await app[ENGINE].run(lambda s: s.check_alerts())
            if await app[ENGINE].run(lambda s: s.clusters.due()):
                await cluster_routes.regroup(app)
        except ConflictError:
            pass  # grouped on request right now
        except Exception:  # never stops identification; tried again shortly
            log.exception("checking alerts or grouping the queue failed")


async def _close_sockets(app: web.Application) -> None:
    """Tell every open WebSocket the server is going away, so shutdown does not wait
    for browsers."""
    open_sockets = app[SOCKETS]
    sockets = list(open_sockets)
    if sockets:
        await asyncio.wait(
            [
                asyncio.create_task(ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutdown"))
                for ws in sockets
            ],
            timeout=SHUTDOWN_GRACE_S,
        )
