"""What a hostile client sends: each case answers a clear 4xx (or works as documented),
never a 5xx, and leaves no traceback in the log."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from server.engine.project.config import Project
from server.http.limits import MAX_FORM_PARTS, MAX_REQUEST_BYTES

from .conftest import KNOWN_QUERY, Client, error_of, identify, image_form, png_bytes, query

Serve = Callable[..., Awaitable[Client]]
TOKEN = "s3cret-token-for-tests"


async def raw_http(
    client: Client,
    head: bytes,
    body: bytes = b"",
    segments: list[bytes] | None = None,
    pause: float = 0.0,
) -> tuple[int, bytes]:
    """Send bytes exactly as given over a fresh TCP connection (headers aiohttp's client
    would refuse to write, chunked bodies, a body in several segments with pauses);
    returns the status and the response body."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(head + b"\r\n" + body)
    await writer.drain()
    for seg in segments or []:
        await asyncio.sleep(pause)
        writer.write(seg)
        await writer.drain()
    status_line = await reader.readline()
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    data = await reader.readexactly(length) if length else b""
    writer.close()
    return int(status_line.split()[1]), data


def request_head(client: Client, method: str, path: str, *headers: str) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{client.server.port}",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


@pytest.fixture()
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Any:
    """Fails the test if anything logged an error with a traceback."""
    caplog.set_level(logging.WARNING)
    yield
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def assert_no_server_errors(client: Client) -> None:
    health = await (await client.get("/api/health")).json()
    assert health["server"]["server_errors"] == 0


# --- bodies ---------------------------------------------------------------------------


async def test_chunked_multipart_is_capped_as_a_whole(client: Client, no_tracebacks: Any) -> None:
    # Several parts, none over the limit alone, no Content-Length: the sum is what counts.
    boundary = "b0undary"
    size = MAX_REQUEST_BYTES // (MAX_FORM_PARTS - 1)
    part = (
        f"--{boundary}\r\nContent-Disposition: form-data\r\n\r\n".encode() + b"x" * size + b"\r\n"
    )

    def chunk(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    body = b"".join(chunk(part) for _ in range(MAX_FORM_PARTS))
    status, data = await raw_http(
        client,
        request_head(
            client,
            "POST",
            "/api/references",
            f"Content-Type: multipart/form-data; boundary={boundary}",
            "Transfer-Encoding: chunked",
        ),
        body + b"0\r\n\r\n",
    )
    assert status == 413, data


async def test_form_with_too_many_parts_is_refused(client: Client, no_tracebacks: Any) -> None:
    form = image_form(query(KNOWN_QUERY), label="Brazil")
    for i in range(MAX_FORM_PARTS):
        form.add_field(f"f{i}", "x")
    assert await error_of(await client.post("/api/references", data=form), 400)
    assert (await (await client.get("/api/classes")).json())["classes"][0]["references"] == 1


@pytest.mark.parametrize(
    "ctype",
    ["multipart/form-data", "multipart/form-data; boundary=", 'multipart/form-data; boundary="'],
)
async def test_multipart_with_a_bad_boundary_is_a_400(
    client: Client, ctype: str, no_tracebacks: Any
) -> None:
    resp = await client.post(
        "/api/identify", data=b"--x\r\nhello\r\n--x--\r\n", headers={"Content-Type": ctype}
    )
    assert resp.status == 400, await resp.text()
    await assert_no_server_errors(client)


async def test_json_arriving_in_two_segments_is_read_whole(client: Client) -> None:
    body = json.dumps({"scope": "taxonomy", "name": "default", "threshold": 0.5}).encode()
    status, data = await raw_http(
        client,
        request_head(
            client,
            "PUT",
            "/api/thresholds",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ),
        body[:10],
        segments=[body[10:]],
        pause=0.3,
    )
    assert status == 200, data
    assert json.loads(data)["taxonomies"]["default"]["threshold"] == 0.5


@pytest.mark.parametrize(
    "body",
    [
        "[" * 20_000 + "]" * 20_000,
        '{"from": "Brazil", "to": "\\ud800"}',
        '{"scope": "taxonomy", "name": "default", "threshold": NaN}',
        '{"scope": "taxonomy", "name": "default", "threshold": ' + "9" * 400 + "}",
        '{"scope": "taxonomy", "name": "default", "threshold": 1e999}',
    ],
)
async def test_hostile_json_is_a_400(client: Client, body: str, no_tracebacks: Any) -> None:
    path = "/api/classes/rename" if '"from"' in body else "/api/thresholds"
    method = client.post if path.endswith("rename") else client.put
    resp = await method(path, data=body.encode(), headers={"Content-Type": "application/json"})
    assert await error_of(resp, 400)
    await assert_no_server_errors(client)


# --- ids and paths --------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["²", "1" * 30, str(2**63), "-1", "١٢"])
async def test_odd_ids_are_404_or_400(client: Client, raw: str, no_tracebacks: Any) -> None:
    for method, path in [
        ("GET", f"/api/review/{raw}"),
        ("DELETE", f"/api/references/{raw}"),
        ("GET", f"/api/references/{raw}/image"),
    ]:
        resp = await client.request(method, path)
        assert resp.status == 404, (path, await resp.text())
    resp = await client.get("/api/review", params={"before": raw})
    assert resp.status in (200, 400), await resp.text()
    if raw != "-1":
        assert resp.status == 400
    await assert_no_server_errors(client)


@pytest.mark.parametrize("ids", [[2**63], [10**30], [-(2**63) - 1], [True]])
async def test_bulk_ids_out_of_range_are_a_400(
    client: Client, ids: list[Any], no_tracebacks: Any
) -> None:
    resp = await client.post("/api/review/bulk", json={"ids": ids, "action": "skip"})
    assert await error_of(resp, 400)


@pytest.mark.parametrize("path", ["x" * 5000, "a\x00b", "/proc/self/../" * 400])
async def test_odd_import_paths_are_a_4xx(client: Client, path: str, no_tracebacks: Any) -> None:
    resp = await client.post("/api/references/import", json={"path": path})
    assert 400 <= resp.status < 500, await resp.text()
    await assert_no_server_errors(client)


# --- headers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", [b"Authorization: Bearer \xff\xfe\xfd", b"Cookie: identify_token=\xff\xfe"]
)
async def test_non_utf8_credentials_are_a_401(
    serve: Serve, project: Project, header: bytes, no_tracebacks: Any
) -> None:
    client = await serve(project, token=TOKEN)
    status, _ = await raw_http(
        client, request_head(client, "GET", "/api/health") + header + b"\r\n"
    )
    assert status == 401


# --- pictures -------------------------------------------------------------------------


def strip_image(width: int, height: int) -> bytes:
    rng = np.random.default_rng(0)
    return png_bytes(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(4000, 16), (16, 4000), (2500, 10)])
async def test_extreme_aspect_pictures_are_rejected_clearly(
    client: Client, size: tuple[int, int], no_tracebacks: Any
) -> None:
    resp = await client.post(
        "/api/identify", data=strip_image(*size), headers={"Content-Type": "image/png"}
    )
    assert await error_of(resp, 422) == "image_rejected"
    await assert_no_server_errors(client)


async def test_every_live_frame_gets_one_answer_even_a_strip(
    client: Client, no_tracebacks: Any
) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (4000, 16), "white").save(buf, format="JPEG")
    async with client.ws_connect("/api/live") as ws:
        assert (await ws.receive_json())["type"] == "hello"
        await ws.send_bytes(buf.getvalue())
        reply = await ws.receive_json(timeout=30)
        assert reply["type"] == "error" and reply["frame"] == 1
        # A text frame nested too deeply: an error message, and the socket still works.
        await ws.send_str("[" * 20_000 + "]" * 20_000)
        assert (await ws.receive_json(timeout=10))["error"]["code"] == "bad_message"
        await ws.send_str('{"type": "ping"}')
        assert (await ws.receive_json(timeout=10))["type"] == "pong"


# --- labels ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label",
    [
        "Brazil\u202e",
        "\u200b\u200b",
        "\u2066x\u2069",
        "../../etc/passwd",
        "a\\b",
        "~/x",
        "\ufeffBOM",
        "x" * 201,
    ],
)
async def test_invisible_and_path_like_labels_are_refused(
    client: Client, label: str, no_tracebacks: Any
) -> None:
    resp = await client.post("/api/classes/rename", json={"from": "Brazil", "to": label})
    assert await error_of(resp, 400)
    form = image_form(query(KNOWN_QUERY), label=label)
    assert await error_of(await client.post("/api/references", data=form), 400)


async def test_labels_are_nfc_normalised_and_acdc_is_a_label(client: Client) -> None:
    resp = await client.post(
        "/api/classes/rename", json={"from": "Brazil", "to": "Cafe\u0301 AC/DC"}
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["label"] == "Caf\u00e9 AC/DC"


async def test_a_form_label_that_is_not_utf8_is_refused(client: Client) -> None:
    from aiohttp import FormData

    form = FormData()
    form.add_field("image", query(KNOWN_QUERY), filename="a.jpg", content_type="image/jpeg")
    form.add_field("label", io.BytesIO(b"Bra\xffzil"), content_type="text/plain")
    assert await error_of(await client.post("/api/references", data=form), 400)


# --- renames and merges ---------------------------------------------------------------


async def test_rename_and_merge_carry_the_threshold_override(client: Client) -> None:
    resp = await client.put(
        "/api/thresholds",
        json={"scope": "class", "name": "Brazil", "threshold": 0.9, "margin": 0.1},
    )
    assert resp.status == 200
    await client.post("/api/classes/rename", json={"from": "Brazil", "to": "Brasil"})
    body = await (await client.get("/api/thresholds")).json()
    brasil = body["classes"]["Brasil"]
    assert (brasil["threshold"], brasil["margin"], brasil["in_force"]) == (
        0.9,
        0.1,
        {"threshold": 0.9, "margin": 0.1},
    )
    assert "Brazil" not in body["classes"]
    assert [o["name"] for o in body["overrides"] if o["scope"] == "class"] == ["Brasil"]
    # A merge keeps the target's own override and drops the source's.
    await client.put("/api/thresholds", json={"scope": "class", "name": "Japan", "threshold": 0.7})
    await client.post("/api/classes/merge", json={"from": ["Brasil"], "into": "Japan"})
    body = await (await client.get("/api/thresholds")).json()
    assert [(o["name"], o["threshold"]) for o in body["overrides"] if o["scope"] == "class"] == [
        ("Japan", 0.7)
    ]


async def test_confirming_a_candidate_renamed_since_resolves_to_the_new_name(
    client: Client,
) -> None:
    # Queue a miss whose candidates include Brazil, then rename Brazil.
    await client.put(
        "/api/thresholds", json={"scope": "taxonomy", "name": "default", "threshold": 1.99}
    )
    result = await identify(client, query(KNOWN_QUERY))
    item_id = result["objects"][0]["review_id"]
    assert item_id is not None
    item = await (await client.get(f"/api/review/{item_id}")).json()
    number = [c["label"] for c in item["candidates"]].index("Brazil") + 1
    await client.post("/api/classes/rename", json={"from": "Brazil", "to": "Brasil"})
    resp = await client.post(
        f"/api/review/{item_id}/resolve", json={"action": "confirm", "candidate": number}
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["resolved_label"] == "Brasil"
    labels = [c["label"] for c in (await (await client.get("/api/classes")).json())["classes"]]
    assert "Brazil" not in labels and "Brasil" in labels


# --- a reference that matches noise ---------------------------------------------------


def noise_jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    _, buf = cv2.imencode(".jpg", rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    return buf.tobytes()


async def test_noise_is_neither_queued_nor_made_a_reference(client: Client) -> None:
    """One noise frame labelled used to make every later noise frame a match; now noise
    fails the quality gate, as a queued crop and as a reference."""
    for seed in range(3):
        obj = (await identify(client, noise_jpeg(seed), source=f"cam{seed}"))["objects"][0]
        assert obj["review_id"] is None
    health = await (await client.get("/api/health")).json()
    assert health["gate_rejected"] == {"noise": 3} and health["queue"]["pending"] == 0
    form = image_form(noise_jpeg(9), label="Static")
    resp = await client.post("/api/references", data=form)
    assert await error_of(resp, 422) == "image_rejected"
    assert "noise" in (await resp.json())["error"]["message"]


async def test_a_query_string_label_that_was_not_utf8_is_refused(client: Client) -> None:
    resp = await client.post(
        "/api/references?label=Bra%FFzil",
        data=query(KNOWN_QUERY),
        headers={"Content-Type": "image/jpeg"},
    )
    assert await error_of(resp, 400)
    assert "U+FFFD" in (await resp.json())["error"]["message"]
