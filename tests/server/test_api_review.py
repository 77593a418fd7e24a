"""The review queue over the API: listing, filters, resolving once, labels becoming
references at once."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from server.engine.loop.recording import REVIEW_MAX_SIDE
from server.engine.project.config import Project
from server.engine.vision.images import decode_image, encode_jpeg
from tests.conftest import DEMO_QUERIES, DEMO_REFS

from .conftest import (
    KNOWN_QUERY,
    UNKNOWN_QUERY,
    Client,
    error_of,
    identify,
    png_bytes,
    query,
)


async def queue_unknown(client: Client, source: str = "api") -> int:
    obj = (await identify(client, query(UNKNOWN_QUERY), source=source))["objects"][0]
    assert obj["review_id"] is not None
    return int(obj["review_id"])


async def resolve(client: Client, item: int, **body: Any) -> Any:
    return await client.post(f"/api/review/{item}/resolve", json=body)


async def test_correcting_an_item_makes_it_a_reference_at_once(client: Client) -> None:
    item = await queue_unknown(client)
    resp = await resolve(client, item, action="correct", label="Germany")
    body = await resp.json()
    # "Unknown" was the right answer for a flag nobody indexed: naming it confirms it.
    assert resp.status == 200 and body["status"] == "confirmed"
    assert body["resolved_label"] == "Germany" and body["reference_id"] is not None
    obj = (await identify(client, query(UNKNOWN_QUERY)))["objects"][0]
    assert obj["label"] == "Germany" and obj["matched"] is True
    assert (await (await client.get("/api/review")).json())["total"] == 0


async def test_confirming_takes_the_chosen_candidate(client: Client) -> None:
    item = await queue_unknown(client)
    listed = await (await client.get(f"/api/review/{item}")).json()
    second = listed["candidates"][1]["label"]
    body = await (await resolve(client, item, action="confirm", candidate=2)).json()
    # The answer was unknown for a class that was indexed: a correction.
    assert body["status"] == "corrected" and body["resolved_label"] == second
    classes = await (await client.get("/api/classes")).json()
    assert {c["label"]: c["references"] for c in classes["classes"]}[second] == 2


async def test_false_positive_and_skip_add_no_reference(client: Client) -> None:
    first, second = await queue_unknown(client, "a"), await queue_unknown(client, "b")
    assert (await (await resolve(client, first, action="false_positive")).json())[
        "status"
    ] == "false_positive"
    assert (await (await resolve(client, second, action="skip")).json())["status"] == "skipped"
    health = await (await client.get("/api/health")).json()
    assert health["index_size"] == 4
    assert health["queue"] == {
        "pending": 0,
        "confirmed": 0,
        "corrected": 0,
        "false_positive": 1,
        "skipped": 1,
        "auto": 0,
    }
    done = await (await client.get("/api/review", params={"status": "skipped"})).json()
    assert [i["id"] for i in done["items"]] == [second]


async def test_an_item_is_never_labelled_twice(client: Client) -> None:
    item = await queue_unknown(client)
    assert (await resolve(client, item, action="correct", label="Germany")).status == 200
    again = await resolve(client, item, action="correct", label="Other")
    assert await error_of(again, 409) == "conflict"
    classes = await (await client.get("/api/classes")).json()
    assert "Other" not in {c["label"] for c in classes["classes"]}


async def test_listing_is_newest_first_filtered_and_paged(client: Client) -> None:
    ids = [await queue_unknown(client, source=f"cam{i}") for i in range(3)]
    page = await (await client.get("/api/review", params={"limit": "2"})).json()
    assert [i["id"] for i in page["items"]] == ids[::-1][:2] and page["total"] == 3
    rest = await (await client.get("/api/review", params={"before": str(ids[1])})).json()
    assert [i["id"] for i in rest["items"]] == [ids[0]]
    reason = page["items"][0]["reason"]
    by_reason = await (await client.get("/api/review", params={"reason": reason})).json()
    assert by_reason["total"] == 3
    by_tax = await (await client.get("/api/review", params={"taxonomy": "fruit"})).json()
    assert by_tax["total"] == 0


async def test_known_photo_is_not_queued(client: Client) -> None:
    assert (await identify(client, query(KNOWN_QUERY)))["objects"][0]["review_id"] is None
    assert (await (await client.get("/api/review")).json())["total"] == 0


async def test_bad_review_requests_get_clear_errors(client: Client) -> None:
    item = await queue_unknown(client)
    assert await error_of(await client.get("/api/review/999"), 404) == "not_found"
    assert await error_of(await client.get("/api/review/999/image"), 404) == "not_found"
    assert await error_of(await resolve(client, 999, action="skip"), 404) == "not_found"
    assert await error_of(await resolve(client, item, action="explode"), 400) == "identify_error"
    assert await error_of(await resolve(client, item, action="correct"), 400) == "identify_error"
    assert (
        await error_of(await resolve(client, item, action="confirm", candidate=99), 400)
        == "identify_error"
    )
    assert (
        await error_of(await resolve(client, item, action="confirm", candidate="1"), 400)
        == "identify_error"
    )
    assert (
        await error_of(await client.get("/api/review", params={"status": "nope"}), 400)
        == "identify_error"
    )
    assert (
        await error_of(await client.get("/api/review", params={"limit": "x"}), 400)
        == "identify_error"
    )
    assert (
        await error_of(await client.get("/api/review", params={"limit": "100000"}), 400)
        == "identify_error"
    )
    big = await client.post(
        f"/api/review/{item}/resolve",
        data=b"{" + b" " * 70_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert "limited" in (await big.json())["error"]["message"]
    assert (await (await client.get(f"/api/review/{item}")).json())["status"] == "pending"


async def test_reopen_undoes_a_label_and_its_reference(client: Client) -> None:
    item = await queue_unknown(client)
    await resolve(client, item, action="correct", label="Germany")
    resp = await client.post(f"/api/review/{item}/reopen")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "pending" and body["reference_id"] is None
    obj = (await identify(client, query(UNKNOWN_QUERY), record="0"))["objects"][0]
    assert obj["label"] != "Germany"
    classes = await (await client.get("/api/classes")).json()
    assert "Germany" not in {c["label"] for c in classes["classes"]}
    again = await client.post(f"/api/review/{item}/reopen")
    assert await error_of(again, 409) == "conflict"
    # It can be labelled again, once.
    assert (await resolve(client, item, action="skip")).status == 200


async def test_bulk_resolves_each_item_on_its_own(client: Client) -> None:
    a, b = await queue_unknown(client, "a"), await queue_unknown(client, "b")
    await resolve(client, b, action="skip")
    resp = await client.post(
        "/api/review/bulk", json={"ids": [a, b, 999], "action": "false_positive"}
    )
    results = (await resp.json())["results"]
    assert [r["ok"] for r in results] == [True, False, False]
    assert results[1]["error"]["code"] == "conflict"
    assert results[2]["error"]["code"] == "not_found"
    bad = await client.post("/api/review/bulk", json={"ids": list(range(1001)), "action": "skip"})
    assert "at most 1000" in (await bad.json())["error"]["message"]
    assert (
        await error_of(
            await client.post("/api/review/bulk", json={"ids": ["x"], "action": "skip"}), 400
        )
        == "identify_error"
    )


async def test_stats_count_decisions_and_coverage(client: Client) -> None:
    await identify(client, query(KNOWN_QUERY))
    a, b = await queue_unknown(client, "a"), await queue_unknown(client, "b")
    c = await queue_unknown(client, "c")
    await resolve(client, a, action="correct", label="Germany")  # new class: confirmed
    await resolve(client, b, action="false_positive")
    await resolve(client, c, action="confirm")  # an indexed class: corrected
    stats = await (await client.get("/api/stats")).json()
    assert stats["queue"]["confirmed"] == 1 and stats["queue"]["false_positive"] == 1
    assert stats["counts"] == {"confirmed": 1, "corrected": 1, "false_positive": 1, "missed": 0}
    assert stats["rates"]["false_positive"] == 1 / 3 and stats["rates"]["missed"] == 0.0
    assert stats["observations"] == 4 and stats["auto_labelled"] == 1
    assert abs(stats["coverage"] - 1 / 4) < 1e-9
    today = stats["per_day"][-1]
    assert today["total"] == 3 and today["counts"]["corrected"] == 1
    assert len(stats["per_day"]) == 30 and len(stats["per_week"]) == 12
    assert stats["per_week"][-1]["total"] == 3
    assert stats["drift"]["this_week"]["total"] == 3
    assert stats["drift"]["last_week"]["total"] == 0
    assert stats["drift"]["change"]["confirmed"] is None  # nothing to compare with
    watch = {w["type"]: w for w in stats["watch"]}
    assert watch["confirmed"]["status"] == "watch"  # 33 % < 80 %
    assert watch["missed"]["status"] == "ok" and watch["corrected"]["status"] == "watch"
    assert {row["label"] for row in stats["labels"]} >= {"Germany", "(none)"}


async def test_threshold_curve_is_counted_on_the_server(client: Client) -> None:
    await identify(client, query(KNOWN_QUERY))
    item = await queue_unknown(client)
    listed = await (await client.get(f"/api/review/{item}")).json()
    await resolve(client, item, action="confirm")
    body = await (await client.get("/api/thresholds/curve")).json()
    assert (body["observed"], body["reviewed"]) == (2, 1)
    assert (body["threshold"], body["margin"]) == (0.8, 0.05)  # the project's default
    low = await client.get("/api/thresholds/curve", params={"threshold": "0.2", "margin": "0"})
    points = (await low.json())["points"]
    # The confirmed item counts for precision at every threshold up to its score.
    assert listed["score"] >= points[-1]["threshold"]
    assert all(p["judged"] == 1 and p["precision"] == 1.0 for p in points)
    looked = await client.get(
        "/api/thresholds/curve", params={"threshold": "0.3", "margin": "0", "label": "Brazil"}
    )
    brazil = await looked.json()
    assert (brazil["label"], brazil["threshold"], brazil["margin"]) == ("Brazil", 0.3, 0.0)
    assert brazil["observed"] == 1 and brazil["points"][5]["coverage"] == 1.0
    fruit = await (await client.get("/api/thresholds/curve", params={"taxonomy": "fruit"})).json()
    assert (fruit["observed"], fruit["reviewed"]) == (0, 0)
    for bad in ({"threshold": "nan"}, {"margin": "x"}, {"threshold": "5"}, {"taxon": "a"}):
        assert (await client.get("/api/thresholds/curve", params=bad)).status == 400


async def test_the_same_picture_from_the_same_source_is_one_item_with_a_count(
    client: Client,
) -> None:
    async with client.ws_connect("/api/events") as events:
        ids = {await queue_unknown(client, "desk") for _ in range(5)}
        actions = []
        while len(actions) < 5:
            event = await events.receive_json(timeout=10)
            if event["type"] == "queue":
                actions.append(event["action"])
    assert actions == ["added"] + ["seen_again"] * 4
    assert len(ids) == 1
    [item] = (await (await client.get("/api/review")).json())["items"]
    assert item["seen"] == 5
    other = await queue_unknown(client, "door")  # another source is another sighting
    assert other not in ids


def frame_with(thing: np.ndarray, size: tuple[int, int], at: tuple[int, int]) -> np.ndarray:
    """A camera-like frame: a real photo as background, ``thing`` pasted at ``at``."""
    background = decode_image(query(UNKNOWN_QUERY))
    frame = cv2.resize(background, size, interpolation=cv2.INTER_LINEAR)
    x, y = at
    frame[y : y + thing.shape[0], x : x + thing.shape[1]] = thing
    return frame


async def test_a_miss_is_stored_small_and_a_label_makes_a_reference_of_its_box(
    client: Client, project: Project
) -> None:
    await client.put(
        "/api/thresholds", json={"scope": "taxonomy", "name": "default", "threshold": 1.99}
    )  # everything is a miss
    brazil = cv2.resize(decode_image((DEMO_REFS / "Brazil.png").read_bytes()), (400, 280))
    frame = frame_with(brazil, (1600, 1200), (1000, 700))
    obj = (await identify(client, png_bytes(frame)))["objects"][0]
    item = await (await client.get(f"/api/review/{obj['review_id']}")).json()
    stored = decode_image(await (await client.get(f"/api/review/{item['id']}/image")).read())
    assert max(stored.shape[:2]) == REVIEW_MAX_SIDE
    assert item["box"] is not None and item["region"] in ("verified", "doubtful")
    x0, y0, x1, y1 = item["box"]
    scale = REVIEW_MAX_SIDE / 1600
    assert abs(x0 - 1000 * scale) < 40 and abs(y1 - 980 * scale) < 40, item["box"]
    body = await (await resolve(client, item["id"], action="correct", label="Flag")).json()
    ref = decode_image(
        await (await client.get(f"/api/references/{body['reference_id']}/image")).read()
    )
    # The box grown a little, never the whole frame; and cut from the picture as it
    # came (more pixels than the small stored picture holds it at).
    assert item["seen"] == 1 and max(x1 - x0, y1 - y0) < 224
    assert ref.shape[1] > (x1 - x0) * 1.5 and ref.shape[0] > (y1 - y0) * 1.5
    box_aspect, ref_aspect = (x1 - x0) / (y1 - y0), ref.shape[1] / ref.shape[0]
    assert abs(ref_aspect / box_aspect - 1) < 0.05, (ref_aspect, box_aspect)
    assert abs(ref_aspect / (stored.shape[1] / stored.shape[0]) - 1) > 0.05


async def test_whole_picture_can_be_chosen_and_deleting_frees_the_file(
    client: Client, project: Project
) -> None:
    await client.put(
        "/api/thresholds", json={"scope": "taxonomy", "name": "default", "threshold": 1.99}
    )
    brazil = cv2.resize(decode_image((DEMO_REFS / "Brazil.png").read_bytes()), (300, 210))
    obj = await identify(client, png_bytes(frame_with(brazil, (960, 720), (40, 40))))
    item_id = obj["objects"][0]["review_id"]
    resp = await resolve(client, item_id, action="correct", label="Scene", region="frame")
    assert await error_of(resp, 400)
    body = await (
        await resolve(client, item_id, action="correct", label="Scene", region="whole")
    ).json()
    ref_id = body["reference_id"]
    ref = decode_image(await (await client.get(f"/api/references/{ref_id}/image")).read())
    assert max(ref.shape[:2]) == REVIEW_MAX_SIDE
    files = {p for p in (project.data_dir / "media" / "references").rglob("*") if p.is_file()}
    assert len(files) == 1
    assert (await client.delete(f"/api/references/{ref_id}")).status == 200
    assert not any(p.exists() for p in files)
    # The item's own picture stays while the item exists.
    assert (await client.get(f"/api/review/{item_id}/image")).status == 200


async def test_media_per_miss_at_640x480_stays_small(client: Client, project: Project) -> None:
    """The storage target: at most 15 MB per 1,000 misses of 640x480 camera frames."""
    await client.put(
        "/api/thresholds", json={"scope": "taxonomy", "name": "default", "threshold": 1.99}
    )
    photos = sorted(DEMO_QUERIES.glob("*.jpg"))
    for i, photo in enumerate(photos):
        frame = cv2.resize(decode_image(photo.read_bytes()), (640, 480))
        obj = (await identify(client, encode_jpeg(frame, 92), source=f"cam{i}"))["objects"][0]
        assert obj["review_id"] is not None
    # A picture per miss, and for a small box also the region as it came.
    files = [p for p in (project.data_dir / "media" / "crops").rglob("*") if p.is_file()]
    assert len(photos) <= len(files) <= 2 * len(photos)
    per_miss = sum(p.stat().st_size for p in files) / len(photos)
    assert per_miss <= 15_000, per_miss


async def test_two_reviewers_at_once_label_an_item_once_off_the_engine_thread(
    client: Client, monkeypatch: Any
) -> None:
    import asyncio
    import threading

    from server.engine.live.service import Service

    threads: list[str] = []
    original = Service.prepare_resolution

    def spy(self: Service, plan: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, plan)

    monkeypatch.setattr(Service, "prepare_resolution", spy)
    item = await queue_unknown(client)
    before = (await (await client.get("/api/health")).json())["index_size"]
    first, second = await asyncio.gather(
        resolve(client, item, action="correct", label="Germany"),
        resolve(client, item, action="correct", label="Deutschland"),
    )
    assert sorted([first.status, second.status]) == [200, 409]
    assert all(name.startswith("prepare") for name in threads) and threads
    health = await (await client.get("/api/health")).json()
    assert health["index_size"] == before + 1
    labels = {c["label"] for c in (await (await client.get("/api/classes")).json())["classes"]}
    assert len({"Germany", "Deutschland"} & labels) == 1
