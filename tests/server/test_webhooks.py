"""Webhooks against a real HTTP receiver on loopback: every event of the outbox
delivered signed, in order, through 500s, hangs and closed connections; dead letters
kept and sent again; kinds filtered; alerts raised once and cleared, told to a
Slack-compatible receiver; a missing secret holds events back without losing any."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from server.engine.project.config import Project
from tests.receiver import Receiver, webhook_yaml

from .conftest import KNOWN_QUERY, UNKNOWN_QUERY, Client, identify, query


@pytest.fixture()
def receiver() -> Any:
    r = Receiver().start()
    yield r
    r.stop()


BUILT: dict[str, int] = {}
"""Per project, the newest event before its server first ran (what ``identify index``
told when the project was built is not a webhook's to deliver: a webhook starts from
the newest event)."""


def outbox_ids(project: Project, kinds: tuple[str, ...] | None = None) -> list[int]:
    """The events since the project's server first ran."""
    with sqlite3.connect(project.db_path) as conn:
        start = BUILT.setdefault(
            str(project.db_path),
            conn.execute("select coalesce(max(id), 0) from outbox").fetchone()[0],
        )
        rows = conn.execute("select id, type from outbox where id > ? order by id", [start])
        return [i for i, t in rows.fetchall() if kinds is None or t in kinds]


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def label_a_miss(client: Client, label: str = "Germany") -> int:
    """Queue an unknown and correct it to a new class: queue, references, class,
    annotation and queue events."""
    out = await identify(client, query(UNKNOWN_QUERY), source="door")
    item = out["objects"][0]["review_id"]
    resp = await client.post(
        f"/api/review/{item}/resolve", json={"action": "correct", "label": label}
    )
    assert resp.status == 200, await resp.text()
    return int(item)


async def test_every_event_is_delivered_signed_in_order_through_failures(
    make_project: Callable[[str], Project],
    serve: Callable[..., Awaitable[Client]],
    receiver: Receiver,
) -> None:
    # The first event meets a 500, a hang past the 1 s timeout and a closed connection.
    receiver.plan = lambda n: ["500", "hang", "close"][n] if n < 3 else "ok"
    receiver.hang_s = 2.0
    project = make_project("webhooks:\n" + webhook_yaml(receiver.url))
    outbox_ids(project)  # the start, before its server runs
    client = await serve(project)
    await label_a_miss(client)
    ids = outbox_ids(project)
    kinds = {t for t in ("queue", "references", "class", "annotation")}
    with sqlite3.connect(project.db_path) as conn:
        told = conn.execute("select type from outbox where id >= ?", [ids[0]]).fetchall()
        assert {t for (t,) in told} == kinds
    ok = await asyncio.to_thread(receiver.wait_for, set(ids), 30)
    assert ok, [(a.event_id, a.answered) for a in receiver.arrivals]
    taken = receiver.taken()
    # In order: each event was first offered only after the one before it was taken.
    firsts = [min(a.at for a in receiver.arrivals if a.event_id == i) for i in ids]
    assert firsts == sorted(firsts)
    assert receiver.tries()[ids[0]] == 4 and receiver.unsigned() == 0
    first = taken[ids[0]].body
    assert first["id"] == ids[0] and first["type"] == "queue" and first["project"] == project.name
    assert first["data"]["action"] == "added"

    async def settled() -> bool:
        body = await (await client.get("/api/webhooks")).json()
        return bool(body["webhooks"][0]["cursor"] == ids[-1])

    await until(settled)
    body = await (await client.get("/api/webhooks")).json()
    [hook] = body["webhooks"]
    assert hook["delivered"] == len(ids) and hook["attempts"] == 0 and not body["dead_letters"]
    assert hook["url"].endswith("/hook") and "token" not in hook["url"]
    health = await (await client.get("/api/health")).json()
    assert health["webhooks"][0]["name"] == "hook"


async def test_a_receiver_that_never_takes_it_gets_dead_letters_sent_again_on_request(
    make_project: Callable[[str], Project],
    serve: Callable[..., Awaitable[Client]],
    receiver: Receiver,
) -> None:
    receiver.plan = lambda n: "500"
    project = make_project(
        "webhooks:\n" + webhook_yaml(receiver.url, extra="    attempts: 2\n    events: [queue]\n")
    )
    outbox_ids(project)  # the start, before its server runs
    client = await serve(project)
    await identify(client, query(UNKNOWN_QUERY), source="a")
    [event] = outbox_ids(project)

    async def dead() -> bool:
        return bool((await (await client.get("/api/webhooks")).json())["dead_letters"])

    await until(dead)
    body = await (await client.get("/api/webhooks")).json()
    [letter] = body["dead_letters"]
    assert letter["event_id"] == event and letter["attempts"] == 2
    assert letter["event_type"] == "queue.added" and "500" in letter["error"]
    assert body["webhooks"][0]["dead_letters"] == 1 and receiver.tries()[event] == 2
    # Events after it are not held up by it.
    await identify(client, query(UNKNOWN_QUERY), source="b")
    second = outbox_ids(project)[-1]
    await until(lambda: _tried(receiver, second))
    # Once the receiver is back, a re-send delivers it.
    receiver.plan = lambda n: "ok"
    bad = await client.post("/api/webhooks/resend", json={"webhook": "nope"})
    assert bad.status == 404
    bad = await client.post("/api/webhooks/resend", json={"ids": "all"})
    assert bad.status == 400
    resp = await client.post("/api/webhooks/resend", json={"ids": [letter["id"]]})
    assert (await resp.json()) == {"resend": 1}
    assert await asyncio.to_thread(receiver.wait_for, {event}, 30)

    async def none_left() -> bool:
        body = await (await client.get("/api/webhooks")).json()
        return all(d["event_id"] != event for d in body["dead_letters"])

    await until(none_left)


async def _tried(receiver: Receiver, event: int) -> bool:
    return receiver.tries()[event] > 0


async def test_alerts_are_raised_once_cleared_and_told_as_slack_text(
    make_project: Callable[[str], Project],
    serve: Callable[..., Awaitable[Client]],
    receiver: Receiver,
) -> None:
    project = make_project(
        "alerts:\n  unknown_rate: 0.5\n  window: 4\n  min_answers: 2\n  hysteresis: 0.1\n"
        "  confirmed_drop: null\n"
        "webhooks:\n"
        + webhook_yaml(receiver.url, name="chat", extra="    events: [alert]\n    format: slack\n")
    )
    outbox_ids(project)  # the start, before its server runs
    client = await serve(project)
    for n in range(3):
        await identify(client, query(UNKNOWN_QUERY), source=f"s{n}")

    async def raised() -> bool:
        health = await (await client.get("/api/health")).json()
        return bool(health["alerts"])

    await until(raised, 20)
    [alert] = (await (await client.get("/api/health")).json())["alerts"]
    assert alert["name"] == "unknown_rate" and alert["value"] == 1.0 and alert["level"] == 0.5
    # Still above: not raised again.
    await identify(client, query(UNKNOWN_QUERY), source="s3")
    await asyncio.sleep(2.5)
    for n in range(4):
        await identify(client, query(KNOWN_QUERY), source=f"k{n}")

    async def cleared() -> bool:
        health = await (await client.get("/api/health")).json()
        return not health["alerts"]

    await until(cleared, 20)
    alerts = outbox_ids(project, ("alert",))
    assert len(alerts) == 2
    assert await asyncio.to_thread(receiver.wait_for, set(alerts), 20)
    # Only the alerts reached this webhook, each as a sentence.
    texts = [a.body for a in receiver.arrivals]
    assert len(texts) == 2 and all(set(t) == {"text"} for t in texts)
    assert "raised" in texts[0]["text"] and "unknown" in texts[0]["text"]
    assert "cleared" in texts[1]["text"]


async def test_events_wait_for_a_missing_secret_and_identification_goes_on(
    make_project: Callable[[str], Project],
    serve: Callable[..., Awaitable[Client]],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IDENTIFY_TEST_HOOK", raising=False)
    project = make_project("webhooks:\n" + webhook_yaml(receiver.url, env="IDENTIFY_TEST_HOOK"))
    outbox_ids(project)  # the start, before its server runs
    client = await serve(project)
    await identify(client, query(UNKNOWN_QUERY), source="a")

    async def waiting() -> bool:
        hook = (await (await client.get("/api/webhooks")).json())["webhooks"][0]
        return bool(hook["state"] == "no_secret" and hook["waiting"] >= 1)

    await until(waiting)
    assert receiver.arrivals == []
    monkeypatch.setenv("IDENTIFY_TEST_HOOK", receiver.secret)
    assert await asyncio.to_thread(receiver.wait_for, set(outbox_ids(project)), 20)
    assert receiver.unsigned() == 0
