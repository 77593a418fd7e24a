"""Storage stays bounded: pictures of decided items expire after ``review.keep_days``
(their rows stay), orphan files go, and health says how much is on disk."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server.engine.project.config import Project
from server.http.keys import ENGINE

from .conftest import UNKNOWN_QUERY, Client, error_of, identify, query


async def queue(client: Client, source: str) -> int:
    obj = (await identify(client, query(UNKNOWN_QUERY), source=source))["objects"][0]
    assert obj["review_id"] is not None
    return int(obj["review_id"])


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


async def test_decided_pictures_expire_pending_ones_stay_and_orphans_go(
    client: Client, project: Project
) -> None:
    # Two sources, two pictures: a different size makes a different file.
    pending = await queue(client, "a")
    skipped = await queue(client, "b")
    resp = await client.post(f"/api/review/{skipped}/resolve", json={"action": "skip"})
    assert resp.status == 200
    crops = project.data_dir / "media" / "crops"
    orphan = crops / "zz" / "left-by-a-crash.jpg"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x" * 1000)
    fresh = crops / "zz" / "being-written.jpg"
    fresh.write_bytes(b"y" * 10)
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))  # left two hours ago
    stats_before = await (await client.get("/api/stats")).json()
    engine = client.server.app[ENGINE]
    soon = await engine.run(lambda s: s.collect(now=datetime.now(UTC)))
    assert soon.pictures_expired == 0 and soon.orphans == 1 and not orphan.exists()
    assert fresh.exists()  # too new to be an orphan: it may be being written
    later = datetime.now(UTC) + timedelta(days=31)
    done = await engine.run(lambda s: s.collect(now=later))
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
    client: Client, project: Project
) -> None:
    item = await queue(client, "a")
    files = files_under(project.data_dir / "media" / "crops")
    assert len(files) == 1
    await client.post(f"/api/review/{item}/resolve", json={"action": "false_positive"})
    later = datetime.now(UTC) + timedelta(days=31)
    engine = client.server.app[ENGINE]
    done = await engine.run(lambda s: s.collect(now=later))
    assert done.pictures_expired == 1 and done.bytes_freed > 0
    assert not any(f.exists() for f in files)
    # keep_days null keeps decided items' pictures forever.
    assert (await engine.run(lambda s: s.live.media.collect(None, now=later))).pictures_expired == 0


async def test_health_reports_disk_use(client: Client) -> None:
    await queue(client, "a")
    storage = (await (await client.get("/api/health")).json())["storage"]
    assert storage["crops_files"] == 1 and storage["crops_bytes"] > 0
    assert storage["database_bytes"] > 0 and storage["index_bytes"] > 0
    assert storage["references_files"] == 0


async def test_a_moved_data_folder_keeps_its_files(
    client: Client, project: Project, tmp_path: Path
) -> None:
    """Stored paths go stale when the data folder moves; collection must not take that
    for orphans (files are known by their content-hash names)."""
    await queue(client, "a")
    engine = client.server.app[ENGINE]
    media = project.data_dir / "media"
    moved = tmp_path / "moved-media"
    shutil.copytree(media, moved)
    files = files_under(moved)
    for f in files:
        os.utime(f, (time.time() - 7200, time.time() - 7200))
    done = await engine.run(lambda s: _collect_at(s, moved))
    assert done.orphans == 0 and files_under(moved) == files


def _collect_at(service: Any, media_root: Path) -> Any:
    """Collect the moved copy (its files' stored paths all point at the old place)."""
    from server.engine.catalog.media import Media

    media = Media(media_root.parent, service.live.store)
    media.root = media_root
    return media.collect(30)
