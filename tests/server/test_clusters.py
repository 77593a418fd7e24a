"""Clusters of pending unknowns on a real server: grouped (HDBSCAN), mapped, named as a
new class, merged into a known one, members dropped, dismissed; a cluster named twice
or whose members were reviewed meanwhile is refused; too few items is said plainly."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageEnhance

from server.engine.project.config import Project

from .conftest import Client, error_of, identify, query

CLUSTERS = "clusters:\n  min_cluster_size: 4\n  regroup_growth: 0\n"


async def everything_a_miss(client: Client) -> None:
    for taxonomy in ("default", "fruit"):
        body = {"scope": "taxonomy", "name": taxonomy, "threshold": 1.99}
        assert (await client.put("/api/thresholds", json=body)).status == 200


def variants(name: str, n: int) -> list[bytes]:
    """``n`` camera-like variants of a demo photo (crop, brightness, mirror)."""
    image = Image.open(io.BytesIO(query(name))).convert("RGB")
    w, h = image.size
    out = []
    for k in range(n):
        v = image.crop((k * w // 60, k * h // 60, w - (n - k) * w // 80, h - k * h // 70))
        v = ImageEnhance.Brightness(v).enhance(0.85 + 0.06 * k)
        if k % 2:
            v = v.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        buf = io.BytesIO()
        v.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


async def queue(client: Client, pictures: list[bytes], tag: str) -> list[int]:
    ids = []
    for n, data in enumerate(pictures):
        out = await identify(client, data, source=f"{tag}{n}")
        ids.append(int(out["objects"][0]["review_id"]))
    return ids


async def test_unknowns_are_grouped_mapped_and_named_once(
    make_project: Callable[[str], Project], serve: Callable[..., Awaitable[Client]]
) -> None:
    project = make_project(CLUSTERS)
    client = await serve(project)
    await everything_a_miss(client)
    # Too few to group: said plainly.
    body = await (await client.get("/api/clusters")).json()
    assert body == {"run": None, "clusters": [], "message": body["message"]}
    assert "never grouped" in body["message"]
    germany = await queue(client, variants("unknown-germany.jpg", 6), "g")
    orange = await queue(client, variants("unknown-orange.jpg", 6), "o")
    body = await (await client.post("/api/clusters/regroup")).json()
    assert body["run"]["items"] == 12 and len(body["clusters"]) == 2, body
    groups = {frozenset(c["members"]) for c in body["clusters"]}
    full = {frozenset((await (await client.get(f"/api/clusters/{c['id']}")).json())["members"])
            for c in body["clusters"]}  # fmt: skip
    assert full == {frozenset(germany), frozenset(orange)}
    assert all(len(g) == 6 for g in groups)
    by_members = {frozenset(germany): "g", frozenset(orange): "o"}
    ids = {by_members[frozenset((await (await client.get(f"/api/clusters/{c['id']}")).json())["members"])]: c
           for c in body["clusters"]}  # fmt: skip
    g, o = ids["g"], ids["o"]
    assert g["medoid_item_id"] in germany and g["mean_similarity"] > 0.7
    assert g["nearest_label"] is not None and -1 <= g["nearest_score"] <= 1
    # The map: every grouped item, as JSON and as a picture.
    points = (await (await client.get("/api/clusters/map")).json())["points"]
    assert sorted(p["item_id"] for p in points) == sorted(germany + orange)
    png = await (await client.get("/api/clusters/map.png")).read()
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (480, 640, 3) and (picture < 250).any()
    # A member that does not belong is dropped: it stays in the queue.
    stray = next(m for m in germany if m != g["medoid_item_id"])
    resp = await client.post(f"/api/clusters/{g['id']}/drop", json={"items": [stray]})
    assert (await resp.json())["size"] == 5
    assert await error_of(
        await client.post(f"/api/clusters/{g['id']}/drop", json={"items": [orange[0]]}), 400
    )
    # Named: a new class; each member labelled (a reference each: unified) and gone.
    assert await error_of(
        await client.post(f"/api/clusters/{g['id']}/name", json={"label": "Brazil"}), 409
    )
    resp = await client.post(f"/api/clusters/{g['id']}/name", json={"label": "Germany"})
    named = await resp.json()
    assert resp.status == 200 and named["resolved"] == 5 and named["failed"] == []
    assert named["cluster"]["status"] == "named" and named["cluster"]["label"] == "Germany"
    refs = await (await client.get("/api/classes/references", params={"label": "Germany"})).json()
    assert len(refs["references"]) == 5
    pending = {
        i["id"]
        for i in (await (await client.get("/api/review", params={"limit": 100})).json())["items"]
    }
    assert stray in pending and not pending & (set(germany) - {stray})
    # Named twice: refused, nothing written.
    assert await error_of(
        await client.post(f"/api/clusters/{g['id']}/name", json={"label": "Germany 2"}), 409
    )
    # A member reviewed meanwhile: refused; the rest untouched.
    one = await client.post(f"/api/review/{orange[0]}/resolve", json={"action": "skip"})
    assert one.status == 200
    resp = await client.post(f"/api/clusters/{o['id']}/merge", json={"label": "Japan"})
    assert await error_of(resp, 409) == "conflict"
    assert await error_of(
        await client.post(f"/api/clusters/{o['id']}/merge", json={"label": "Nowhere"}), 404
    )
    await client.post(f"/api/clusters/{o['id']}/drop", json={"items": [orange[0]]})
    resp = await client.post(f"/api/clusters/{o['id']}/merge", json={"label": "Japan"})
    merged = await resp.json()
    assert (
        resp.status == 200 and merged["resolved"] == 5 and merged["cluster"]["status"] == "merged"
    )
    # Dismissed clusters are hidden and cannot be dismissed twice.
    sweden = await queue(client, variants("known-sweden.jpg", 5), "s")
    body = await (await client.post("/api/clusters/regroup")).json()
    found = [c for c in body["clusters"] if c["medoid_item_id"] in sweden]
    assert len(found) == 1, body
    [r] = found
    assert (await (await client.post(f"/api/clusters/{r['id']}/dismiss")).json())[
        "status"
    ] == "dismissed"
    assert await error_of(await client.post(f"/api/clusters/{r['id']}/dismiss"), 409)
    assert all(
        c["id"] != r["id"] for c in (await (await client.get("/api/clusters")).json())["clusters"]
    )
    assert await error_of(await client.get("/api/clusters/99999"), 404)
    with sqlite3.connect(project.db_path) as conn:
        found = conn.execute("select count(*) from outbox where type = 'cluster'").fetchone()[0]
    assert found >= 3  # each cluster found was told


def test_a_naming_is_not_undone_by_a_regroup_and_a_partial_one_reopens(
    make_project: Callable[[str], Project], embedder: Any
) -> None:
    from server.engine.live.service import Service

    service = Service.open(make_project(CLUSTERS), embedder)
    try:
        for taxonomy in ("default", "fruit"):
            service.set_threshold("taxonomy", taxonomy, 1.99, None)
        for n, data in enumerate(variants("unknown-germany.jpg", 6)):
            service.identify_prepared(service.prepare(data), source=f"g{n}")
        desk = service.clusters
        [cluster] = desk.store(desk.compute(*desk.snapshot()))["clusters"]
        members, label = desk.begin_naming(cluster["id"], "Germany", merge=False)
        # A regroup while it is being named: its members are left out, it stays.
        ids, _ = desk.snapshot()
        assert not set(ids) & set(members)
        desk.store(desk.compute(*desk.snapshot()))
        assert desk.get(cluster["id"])["status"] == "naming"
        # Only two members got labelled: open again, without them.
        again = desk.end_naming(cluster["id"], label, False, members[:2])
        assert again["status"] == "open" and again["size"] == len(members) - 2
        # A crash mid-naming: the next open reopens it.
        desk.begin_naming(cluster["id"], "Germany", merge=False)
    finally:
        service.close()
    service = Service.open(make_project(CLUSTERS), embedder)
    try:
        assert service.clusters.get(cluster["id"])["status"] == "open"
    finally:
        service.close()
