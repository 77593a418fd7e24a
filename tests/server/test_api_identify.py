"""``/api/health`` and ``/api/identify``: answers, misses into the queue, rejections."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from PIL import Image

from server.engine.project.config import Project
from server.http import limits
from server.http.keys import ENGINE

from .conftest import (
    KNOWN_QUERY,
    UNKNOWN_QUERY,
    Client,
    error_of,
    identify,
    image_form,
    png_bytes,
    query,
)


async def test_health_reports_model_index_classes_and_queue(client: Client) -> None:
    resp = await client.get("/api/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["model"] == "efficientnet-lite0/imagenet/gem3"
    assert body["device"] == "cpu"  # `auto` on a machine without a GPU
    assert body["index_size"] == 4 and body["classes"] == 4
    assert body["thresholds"]["threshold"] == 0.6  # the model default (uncalibrated)
    assert body["queue"]["pending"] == 0
    assert body["uptime_s"] >= 0
    assert body["server"]["server_errors"] == 0


async def test_known_photo_is_identified_from_a_raw_body(client: Client) -> None:
    body = await identify(client, query(KNOWN_QUERY))
    [obj] = body["objects"]
    assert obj["label"] == "Brazil" and obj["matched"] is True
    assert obj["review_id"] is None
    assert obj["bbox"] is None or len(obj["bbox"]) == 4  # where it was found
    assert obj["candidates"][0]["label"] == "Brazil"
    assert body["elapsed_ms"] > 0


async def test_known_photo_is_identified_from_a_multipart_form(client: Client) -> None:
    resp = await client.post("/api/identify", data=image_form(query(KNOWN_QUERY)))
    assert resp.status == 200
    assert (await resp.json())["objects"][0]["label"] == "Brazil"


async def test_unknown_photo_is_queued_with_its_crop(client: Client) -> None:
    body = await identify(client, query(UNKNOWN_QUERY), source="shelf-cam")
    [obj] = body["objects"]
    assert obj["label"] is None and obj["matched"] is False
    assert obj["review_id"] is not None
    listing = await (await client.get("/api/review")).json()
    assert listing["total"] == 1
    [item] = listing["items"]
    assert item["id"] == obj["review_id"] and item["source"] == "shelf-cam"
    assert item["status"] == "pending" and item["reason"] == obj["reason"]
    assert [c["label"] for c in item["candidates"]] == [c["label"] for c in obj["candidates"]]
    crop = await client.get(f"/api/review/{item['id']}/image")
    assert crop.status == 200 and crop.content_type == "image/jpeg"
    assert (await crop.read())[:2] == b"\xff\xd8"


async def test_record_0_stores_and_queues_nothing(client: Client) -> None:
    body = await identify(client, query(UNKNOWN_QUERY), record="0")
    assert body["objects"][0]["review_id"] is None
    assert (await (await client.get("/api/review")).json())["total"] == 0


async def test_tiny_unknown_image_is_gated_and_counted_not_queued(client: Client) -> None:
    rng = np.random.default_rng(0)
    tiny = png_bytes(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    resp = await client.post("/api/identify", data=tiny, headers={"Content-Type": "image/png"})
    obj = (await resp.json())["objects"][0]
    assert obj["matched"] is False and obj["review_id"] is None
    health = await (await client.get("/api/health")).json()
    assert health["gate_rejected"] == {"too_small": 1}
    assert health["queue"]["pending"] == 0


async def test_blurred_unknown_image_is_gated_as_blurry(client: Client) -> None:
    flat = png_bytes(np.full((200, 200, 3), 90, np.uint8))
    resp = await client.post("/api/identify", data=flat, headers={"Content-Type": "image/png"})
    assert (await resp.json())["objects"][0]["review_id"] is None
    health = await (await client.get("/api/health")).json()
    assert health["gate_rejected"] == {"blurry": 1}


# --- rejections ------------------------------------------------------------------------


async def test_zero_byte_upload_is_rejected(client: Client) -> None:
    resp = await client.post("/api/identify", data=b"", headers={"Content-Type": "image/jpeg"})
    assert await error_of(resp, 422) == "image_rejected"


async def test_truncated_jpeg_is_rejected(client: Client) -> None:
    data = query(KNOWN_QUERY)
    resp = await client.post(
        "/api/identify", data=data[: len(data) // 3], headers={"Content-Type": "image/jpeg"}
    )
    assert await error_of(resp, 422) == "image_rejected"


async def test_non_image_bytes_are_rejected(client: Client) -> None:
    resp = await client.post(
        "/api/identify", data=b"%PDF-1.7 not an image" * 10, headers={"Content-Type": "image/jpeg"}
    )
    assert await error_of(resp, 422) == "image_rejected"


async def test_wrong_content_type_is_415(client: Client) -> None:
    resp = await client.post(
        "/api/identify", data=query(KNOWN_QUERY), headers={"Content-Type": "text/plain"}
    )
    assert await error_of(resp, 415) == "unsupported_media_type"


async def test_form_without_image_field_is_rejected(client: Client) -> None:
    resp = await client.post("/api/identify", data={"label": "x"})
    assert await error_of(resp, 415) == "unsupported_media_type"  # urlencoded, not multipart


async def test_request_over_the_byte_limit_is_413(client: Client) -> None:
    big = b"\xff\xd8" + b"\0" * (limits.MAX_REQUEST_BYTES + 10)
    resp = await client.post("/api/identify", data=big, headers={"Content-Type": "image/jpeg"})
    assert await error_of(resp, 413) == "request_entity_too_large"


async def test_multipart_image_over_the_byte_limit_is_413(client: Client) -> None:
    big = b"\xff\xd8" + b"\0" * (limits.MAX_REQUEST_BYTES + 10)
    resp = await client.post("/api/identify", data=image_form(big))
    assert await error_of(resp, 413) == "request_entity_too_large"


async def test_decompression_bomb_is_rejected(client: Client) -> None:
    # 10,000 x 10,000 pixels of one colour: a few hundred KB of PNG, 100 MB decoded.
    buf = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(buf, format="PNG")
    resp = await client.post(
        "/api/identify", data=buf.getvalue(), headers={"Content-Type": "image/png"}
    )
    code = await error_of(resp, 422)
    assert code == "image_rejected"


async def test_pending_request_limit_answers_429_and_does_nothing(client: Client) -> None:
    client.server.app[ENGINE].max_pending = 0
    resp = await client.post(
        "/api/identify", data=query(UNKNOWN_QUERY), headers={"Content-Type": "image/jpeg"}
    )
    assert await error_of(resp, 429) == "busy"
    assert resp.headers["Retry-After"] == "1"
    health = await (await client.get("/api/health")).json()
    assert health["identified"] == 0 and health["queue"]["pending"] == 0
    assert health["server"]["busy_refused"] == 1


async def test_eight_concurrent_clients_on_two_workers_get_back_pressure(
    serve: Callable[..., Awaitable[Client]], project: Project
) -> None:
    client = await serve(project, workers=2)
    assert client.server.app[ENGINE].max_pending == 4

    async def one() -> tuple[int, str | None]:
        resp = await client.post(
            "/api/identify",
            data=query(UNKNOWN_QUERY),
            headers={"Content-Type": "image/jpeg"},
            params={"record": "0"},
        )
        await resp.read()
        return resp.status, resp.headers.get("Retry-After")

    answers = await asyncio.gather(*(one() for _ in range(8)))
    assert {status for status, _ in answers} <= {200, 429}
    assert sum(status == 200 for status, _ in answers) >= 4
    assert sum(status == 429 for status, _ in answers) >= 1, answers
    assert all(retry == "1" for status, retry in answers if status == 429)


async def test_unknown_route_and_method_are_json_errors(client: Client) -> None:
    assert await error_of(await client.get("/api/nope"), 404) == "not_found"
    assert await error_of(await client.get("/api/identify"), 405) == "method_not_allowed"


async def test_inference_never_runs_on_the_event_loop_thread(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from server.engine.live.service import Service

    seen: list[str] = []
    for name in ("prepare", "identify_prepared"):
        original = getattr(Service, name)

        def spy(
            self: Service, *args: object, _original: object = original, **kwargs: object
        ) -> object:
            seen.append(threading.current_thread().name)
            return _original(self, *args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(Service, name, spy)
    await identify(client, query(KNOWN_QUERY))
    assert len(seen) == 2 and threading.main_thread().name not in seen
    assert seen[0].startswith("prepare") and seen[1].startswith("engine")
