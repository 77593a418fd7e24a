"""``/api/events`` and ``/api/live``: the event stream, browser frames, dropping instead
of queueing, one review entry per tracked appearance, bad messages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import WSMsgType

from server.engine.project.config import Project
from server.http import limits
from server.http.keys import STATS

from .conftest import KNOWN_QUERY, UNKNOWN_QUERY, Client, identify, query


async def next_of(ws: Any, kind: str, timeout: float = 30.0) -> dict[str, Any]:
    """The next JSON message of type ``kind`` (others are skipped)."""
    while True:
        msg = await asyncio.wait_for(ws.receive_json(), timeout)
        if msg["type"] == kind:
            return msg  # type: ignore[no-any-return]


async def send_paced(ws: Any, data: bytes) -> None:
    """Send a frame no faster than the per-client frame rate allows."""
    await asyncio.sleep(1.2 / limits.MAX_FPS_PER_CLIENT)
    await ws.send_bytes(data)


async def test_events_stream_identifications_and_queue_changes(client: Client) -> None:
    async with client.ws_connect("/api/events") as ws:
        await identify(client, query(UNKNOWN_QUERY), source="door")
        # The item is told as it is written, before the identification that queued it.
        queued = await next_of(ws, "queue")
        assert queued["action"] == "added" and queued["pending"] == 1
        event = await next_of(ws, "identification")
        assert event["source"] == "door" and event["objects"][0]["matched"] is False
        assert event["objects"][0]["review_id"] == queued["item_id"]
        await client.post(
            f"/api/review/{queued['item_id']}/resolve",
            json={"action": "correct", "label": "Germany"},
        )
        added = await next_of(ws, "references")
        assert added["action"] == "added" and added["label"] == "Germany"
        resolved = await next_of(ws, "queue")
        assert resolved["action"] == "resolved" and resolved["pending"] == 0


async def test_live_frames_get_results_smoothed_on_one_track(client: Client) -> None:
    async with client.ws_connect("/api/live") as ws:
        hello = await next_of(ws, "hello")
        assert hello["max_fps"] == limits.MAX_FPS_PER_CLIENT
        tracks = set()
        for _ in range(4):
            await send_paced(ws, query(KNOWN_QUERY))
            result = await next_of(ws, "result")
            [obj] = result["objects"]
            assert obj["label"] == "Brazil"
            tracks.add(obj["track_id"])
        assert len(tracks) == 1 and tracks.pop().startswith(hello["source"])
    assert (await (await client.get("/api/review")).json())["total"] == 0


async def test_unknown_on_live_video_is_queued_once_per_track(client: Client) -> None:
    async with client.ws_connect("/api/live") as ws:
        await next_of(ws, "hello")
        review_ids = []
        for _ in range(6):
            await send_paced(ws, query(UNKNOWN_QUERY))
            obj = (await next_of(ws, "result"))["objects"][0]
            assert obj["label"] is None
            review_ids.append(obj["review_id"])
    # Queued on the third frame (review.min_track_frames), never again for this track.
    assert review_ids[:2] == [None, None] and review_ids[2] is not None
    assert review_ids[3:] == [None, None, None]
    listing = await (await client.get("/api/review")).json()
    assert listing["total"] == 1 and listing["items"][0]["source"].startswith("browser-")


async def test_an_audited_answer_on_live_video_is_queued_once_per_track(
    serve: Callable[..., Awaitable[Client]], make_project: Callable[[str], Project]
) -> None:
    client = await serve(make_project("  audit_share: 1.0\n  audit_margin: 0\n"))
    async with client.ws_connect("/api/live") as ws:
        await next_of(ws, "hello")
        review_ids = []
        for _ in range(6):
            await send_paced(ws, query(KNOWN_QUERY))
            obj = (await next_of(ws, "result"))["objects"][0]
            assert obj["label"] == "Brazil"
            review_ids.append(obj["review_id"])
    assert review_ids[:2] == [None, None] and review_ids[2] is not None
    assert review_ids[3:] == [None, None, None]
    [item] = (await (await client.get("/api/review")).json())["items"]
    assert (item["reason"], item["accepted_label"]) == ("audit", "Brazil")


async def test_frames_sent_while_one_is_in_flight_are_dropped_not_queued(client: Client) -> None:
    async with client.ws_connect("/api/live") as ws:
        await next_of(ws, "hello")
        for _ in range(10):  # as fast as the socket takes them
            await ws.send_bytes(query(KNOWN_QUERY))
        # Exactly one answer per frame: results for the identified ones, "dropped"
        # (with the reason) for the rest, so a client waiting on answers never stalls.
        answers = [await asyncio.wait_for(ws.receive_json(), 30) for _ in range(10)]
        await ws.send_str('{"type": "ping"}')
        await next_of(ws, "pong")
    stats = client.app[STATS]
    assert stats.frames_received == 10
    dropped = [a for a in answers if a["type"] == "dropped"]
    results = [a for a in answers if a["type"] == "result"]
    assert len(dropped) + len(results) == 10 and results
    assert sorted(a["frame"] for a in answers) == list(range(1, 11))
    assert len(dropped) == stats.frames_dropped["busy"] + stats.frames_dropped["rate"]
    assert stats.frames_dropped["busy"] >= 1


async def test_frames_over_the_rate_limit_are_dropped(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.http.routes import live

    monkeypatch.setattr(live, "MAX_FPS_PER_CLIENT", 0.01)  # one frame per 100 s
    async with client.ws_connect("/api/live") as ws:
        await next_of(ws, "hello")
        await ws.send_bytes(query(KNOWN_QUERY))
        await next_of(ws, "result")
        await ws.send_bytes(query(KNOWN_QUERY))
        dropped = await next_of(ws, "dropped")
        assert dropped["frame"] == 2 and dropped["reason"] == "rate"
        assert 90_000 < dropped["retry_ms"] <= 100_000  # when the client may send again
    assert client.app[STATS].frames_dropped["rate"] == 1


async def test_garbage_messages_get_an_error_and_the_socket_stays_open(client: Client) -> None:
    async with client.ws_connect("/api/live") as ws:
        await next_of(ws, "hello")
        await ws.send_str("this is not json")
        assert (await next_of(ws, "error"))["error"]["code"] == "bad_message"
        await ws.send_bytes(b"\x00\x01garbage, not a jpeg")
        bad = await next_of(ws, "error")
        assert bad["error"]["code"] == "image_rejected"
        await send_paced(ws, query(KNOWN_QUERY))
        assert (await next_of(ws, "result"))["objects"][0]["label"] == "Brazil"


async def test_oversized_websocket_message_closes_with_1009(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.http.routes import live

    # A small limit, so the whole message fits in the socket buffers and the client
    # sees the server's close frame rather than a connection reset mid-send.
    monkeypatch.setattr(live, "MAX_WS_MESSAGE_BYTES", 4096)
    async with client.ws_connect("/api/live") as ws:
        await next_of(ws, "hello")
        with contextlib.suppress(ConnectionError):
            await ws.send_bytes(b"\xff" * (4096 + 1))
        msg = await asyncio.wait_for(ws.receive(), 10)
        while msg.type == WSMsgType.TEXT:  # a result sent before the close
            msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert ws.close_code == 1009
    health = await (await client.get("/api/health")).json()
    assert health["server"]["server_errors"] == 0


async def test_shutdown_closes_connected_sockets_quickly(client: Client) -> None:
    live_ws = await client.ws_connect("/api/live")
    events_ws = await client.ws_connect("/api/events")
    await next_of(live_ws, "hello")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.close()
    assert loop.time() - started < limits.SHUTDOWN_GRACE_S + 3
    assert live_ws.closed and events_ws.closed
