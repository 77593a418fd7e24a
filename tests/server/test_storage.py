"""Storage stays bounded: pictures of decided items expire after ``review.keep_days``
(their rows stay), orphan files go, and health says how much is on disk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.engine.config import Project
from server.http.keys import ENGINE

from .conftest import UNKNOWN_QUERY, Client, error_of, identify, query


async def queue(client: Client, source: str) -> int:
    obj = (await identify(client, query(UNKNOWN_QUERY), source=source))["objects"][0]
    assert obj["review_id"] is not None
    return int(obj["review_id"])


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


async def test_decided_pictures_expire_pending_ones_stay_and_orphans_go(
        client: Client, project: Project) -> None:
    # Two sources, two pictures: a different size makes a different file.
    pending = await queue(client, "a")
    skipped = await queue(client, "b")
    resp = await client.post(f"/api/review/{skipped}/resolve", json={"action": "skip"})
    assert resp.status == 200
    crops = project.data_dir / "media" / "crops"
    orphan = crops / "zz" / "left-by-a-crash.jpg"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x" * 1000)
    stats_before = await (await client.get("/api/stats")).json()
    engine = client.server.app[ENGINE]
    soon = await engine.run(lambda s: s.media.collect(30, now=datetime.now(UTC)))
    assert soon.pictures_expired == 0 and soon.orphans == 1 and not orphan.exists()
    later = datetime.now(UTC) + timedelta(days=31)
    done = await engine.run(lambda s: s.media.collect(30, now=later))
    assert done.pictures_expired == 1
    # The pending item's picture is the same file (same picture): still needed, kept.
    assert (await client.get(f"/api/review/{pending}/image")).status == 200
    item = await client.get(f"/api/review/{skipped}")
    assert item.status == 200 and (await item.json())["status"] == "skipped"
    gone = await client.get(f"/api/review/{skipped}/image")
    assert "no longer kept" in (await gone.json())["error"]["message"]
    assert await error_of(gone, 404) == "not_found"
    assert await (await client.get("/api/stats")).json() == stats_before


async def test_an_expired_picture_that_no_item_shares_is_deleted(
        client: Client, project: Project) -> None:
    item = await queue(client, "a")
    files = files_under(project.data_dir / "media" / "crops")
    assert len(files) == 1
    await client.post(f"/api/review/{item}/resolve", json={"action": "false_positive"})
    later = datetime.now(UTC) + timedelta(days=31)
    engine = client.server.app[ENGINE]
    done = await engine.run(lambda s: s.media.collect(30, now=later))
    assert done.pictures_expired == 1 and done.bytes_freed > 0
    assert not any(f.exists() for f in files)
    # keep_days null keeps decided items' pictures forever.
    assert (await engine.run(lambda s: s.media.collect(None, now=later))).pictures_expired == 0


async def test_health_reports_disk_use(client: Client) -> None:
    await queue(client, "a")
    storage = (await (await client.get("/api/health")).json())["storage"]
    assert storage["crops_files"] == 1 and storage["crops_bytes"] > 0
    assert storage["database_bytes"] > 0 and storage["index_bytes"] > 0
    assert storage["references_files"] == 0
