"""Clusters of the pending unknowns: the newest grouping, its 2-D map, grouping again,
and acting on a cluster (name it a new class, merge it into a known one, drop members,
dismiss it)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import contract
from server.engine.errors import ConflictError, IdentifyError
from server.engine.live.service import Service
from server.engine.loop.cluster_map import draw_map

from ..io import read_json
from ..jobs import Job, wait_for_client
from ..keys import ENGINE, GROUPING, JOBS
from . import author, int_param

routes = web.RouteTableDef()
KIND = "cluster_naming"


async def regroup(app: web.Application) -> contract.Clusters:
    """Group the pending unknowns now: the snapshot and the result on the engine
    thread, the grouping itself on a worker (identification goes on meanwhile).

    Raises:
        ConflictError: a grouping is under way.
    """
    lock = app[GROUPING]
    if lock.locked():
        raise ConflictError("the queue is being grouped already; wait for it")
    async with lock:
        engine = app[ENGINE]
        ids, vectors = await engine.run(lambda s: s.clusters.snapshot())
        computed = await engine.run_worker(lambda s: s.clusters.compute(ids, vectors))
        return await engine.run(lambda s: s.clusters.store(computed))


@routes.get("/api/clusters")
async def listing(request: web.Request) -> web.Response:
    """The newest grouping's open clusters, largest first (``?members=all``: every
    member, else the first six)."""
    shown = None if request.query.get("members") == "all" else 6
    return web.json_response(await request.app[ENGINE].run(lambda s: s.clusters.listing(shown)))


@routes.post("/api/clusters/regroup")
async def group_now(request: web.Request) -> web.Response:
    """Group the pending unknowns now (409 while a grouping runs)."""
    return web.json_response(await regroup(request.app))


@routes.get("/api/clusters/map")
async def map_points(request: web.Request) -> web.Response:
    """The newest grouping's items on the 2-D map (``cluster_id`` null: in none)."""
    points = await request.app[ENGINE].run(lambda s: s.clusters.map_points())
    return web.json_response({"points": points})


@routes.get("/api/clusters/map.png")
async def map_png(request: web.Request) -> web.Response:
    """The same map as a picture."""
    engine = request.app[ENGINE]
    run_id, png, points = await engine.run(lambda s: s.clusters.map_picture())
    if png is None:
        # Drawn on a worker, once per grouping: a page that asks for it in a loop (an
        # <img> of another site carries no Origin) costs identification nothing.
        png = await engine.run_worker(lambda s: draw_map(points))
        if run_id:
            drawn = png
            await engine.run(lambda s: s.clusters.keep_picture(run_id, drawn))
    return web.Response(body=png, content_type="image/png")


@routes.get(r"/api/clusters/{id:\d+}")
async def one(request: web.Request) -> web.Response:
    """One cluster with all its members."""
    cluster_id = int_param(request, "id")
    return web.json_response(await request.app[ENGINE].run(lambda s: s.clusters.get(cluster_id)))


@routes.post(r"/api/clusters/{id:\d+}/name")
async def name(request: web.Request) -> web.Response:
    """``{"label": L [, "wait"]}``: the cluster becomes the new class ``L``: each member
    is labelled ``L`` (an annotation; in a unified taxonomy its picture becomes a
    reference) and leaves the queue. 409 when named already, or when members were
    reviewed meanwhile."""
    return await _label_members(request, merge=False)


@routes.post(r"/api/clusters/{id:\d+}/merge")
async def merge(request: web.Request) -> web.Response:
    """``{"label": L [, "wait"]}``: the same, into the known class ``L``."""
    return await _label_members(request, merge=True)


async def _label_members(request: web.Request, merge: bool) -> web.Response:
    cluster_id = int_param(request, "id")
    body = await read_json(request)
    wait = body.get("wait", True)
    if not isinstance(wait, bool):
        raise IdentifyError("'wait' must be true or false")
    engine, label, who = request.app[ENGINE], body.get("label"), author(request)

    def begin(s: Service) -> tuple[list[int], str]:
        return s.clusters.begin_naming(cluster_id, label, merge)

    members, clean = await engine.run(begin)

    async def work(job: Job) -> None:
        labelled: list[int] = []
        try:
            for item_id in members:
                if job.cancel_requested:
                    break
                try:
                    await engine.resolve(item_id, "correct", clean, author=who)
                    labelled.append(item_id)
                    job.results.append({"id": item_id, "ok": True})
                except IdentifyError as exc:
                    error = {"code": exc.code, "message": exc.message}
                    job.results.append({"id": item_id, "ok": False, "error": error})
                job.step_done()
        finally:
            cluster = await engine.run(
                lambda s: s.clusters.end_naming(cluster_id, clean, merge, labelled)
            )
            job.results.append({"cluster": cluster})

    job = request.app[JOBS].start(KIND, len(members), work)
    if not wait:
        return web.json_response({"job": job.to_json(results=False)}, status=202)
    await wait_for_client(request, job)
    return web.json_response(_named(job))


def _named(job: Job) -> contract.ClusterNamed:
    results: list[dict[str, Any]] = job.results
    cluster = next(r["cluster"] for r in results if "cluster" in r)
    per_item = [r for r in results if "cluster" not in r]
    return {
        "cluster": cluster,
        "resolved": sum(r["ok"] for r in per_item),
        "failed": [r for r in per_item if not r["ok"]],
    }


@routes.post(r"/api/clusters/{id:\d+}/drop")
async def drop(request: web.Request) -> web.Response:
    """``{"items": [...]}``: members that do not belong leave the cluster (they stay in
    the queue)."""
    cluster_id = int_param(request, "id")
    items = (await read_json(request)).get("items")
    return web.json_response(
        await request.app[ENGINE].run(lambda s: s.clusters.drop(cluster_id, items))
    )


@routes.post(r"/api/clusters/{id:\d+}/dismiss")
async def dismiss(request: web.Request) -> web.Response:
    """Hide the cluster; its members stay in the queue."""
    cluster_id = int_param(request, "id")
    return web.json_response(
        await request.app[ENGINE].run(lambda s: s.clusters.dismiss(cluster_id))
    )
