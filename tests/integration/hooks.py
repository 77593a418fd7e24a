"""Webhook crash harness: a real ``identify serve`` process, told to send every event
to a receiver on loopback that fails most attempts (500s, closed connections), is
killed with SIGKILL at a random moment while a client writes (so events wait
undelivered); after the last kill a restart with a healthy receiver must deliver every
event the outbox holds, each with a valid signature. Used by ``test_webhooks_crash`` (a
few kills) and ``tests/benchmarks/bench_webhooks.py`` (20, with delivery latency)."""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from server.engine.project.config import load_project
from tests.receiver import Receiver

from .crash import Ledger, Server, write_until_killed, writer_folders


@dataclass
class HookRun:
    """What the kills and the receiver saw."""

    kills: int = 0
    undelivered_at_kill: list[int] = field(default_factory=list)
    """Events in the outbox the receiver had not taken when each kill landed."""
    events: int = 0
    """Events in the outbox at the end."""
    missing: list[int] = field(default_factory=list)
    """Outbox events the receiver never took (must be empty)."""
    unsigned: int = 0
    arrivals: int = 0
    duplicates: int = 0
    """Events taken more than once (at least once: a kill between the receiver's 2xx
    and the cursor's write sends it again; the receiver tells by the id)."""
    writes: int = 0
    untold: list[str] = field(default_factory=list)
    """Acknowledged changes with no event in the outbox (must be empty)."""


def outbox(db: Path, after: int = 0) -> list[int]:
    """The ids of the events in the outbox after ``after`` (read beside the running
    server)."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        return [
            i for (i,) in conn.execute("select id from outbox where id > ? order by id", [after])
        ]
    finally:
        conn.close()


def told(db: Path) -> dict[str, set[int]]:
    """Ids of the references the outbox says were added and removed, and the review
    items it says were resolved."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        rows = conn.execute("select type, action, body from outbox").fetchall()
    finally:
        conn.close()
    out: dict[str, set[int]] = {"added": set(), "removed": set(), "resolved": set()}
    for kind, action, body in rows:
        data = json.loads(body)
        if kind == "references" and action in ("added", "removed"):
            out[action].add(int(data["id"]))
        elif kind == "queue" and action == "resolved":
            out["resolved"].add(int(data["item_id"]))
    return out


def untold(db: Path, ledger: Ledger) -> list[str]:
    """The acknowledged writes the outbox has no event for."""
    events = told(db)
    missing = [f"reference {i} added" for i in ledger.references if i not in events["added"]]
    missing += [f"reference {i} removed" for i in ledger.deleted if i not in events["removed"]]
    missing += [f"item {i} resolved" for i in ledger.resolved if i not in events["resolved"]]
    return missing


def run_hook_kills(
    project: Path,
    port: int,
    work: Path,
    receiver: Receiver,
    kills: int,
    seed: int = 0,
    fail_share: float = 0.7,
    min_s: float = 1.0,
    max_s: float = 4.0,
    settle_s: float = 120.0,
) -> HookRun:
    """``kills`` rounds of start, write, SIGKILL; then a restart that must deliver all."""
    folder = writer_folders(work)
    db = load_project(project).db_path
    rng = random.Random(seed)
    failing = random.Random(seed + 1)
    receiver.plan = lambda n: (
        failing.choice(["500", "close"]) if failing.random() < fail_share else "ok"
    )
    ledger, run = Ledger(), HookRun()
    # The webhook starts from the newest event when the server first runs with it:
    # what ``identify index`` told before is not its to deliver.
    before = max(outbox(db), default=0)
    server = Server(project, port)
    for k in range(kills):
        write_until_killed(server, ledger, folder, seed * 1000 + k, rng.uniform(min_s, max_s))
        run.kills += 1
        run.undelivered_at_kill.append(len(set(outbox(db, before)) - set(receiver.taken())))
    receiver.plan = lambda n: "ok"
    server.start()
    try:
        receiver.wait_for(set(outbox(db, before)), settle_s)
    finally:
        server.stop()
    ids = outbox(db, before)
    taken = receiver.taken()
    run.events = len(ids)
    run.missing = [i for i in ids if i not in taken]
    run.unsigned = receiver.unsigned()
    run.arrivals = len(receiver.arrivals)
    ok_per_event: dict[int, int] = {}
    for a in receiver.arrivals:
        if a.answered == "ok":
            ok_per_event[a.event_id] = ok_per_event.get(a.event_id, 0) + 1
    run.duplicates = sum(1 for n in ok_per_event.values() if n > 1)
    run.writes = ledger.writes
    run.untold = untold(db, ledger)
    return run
