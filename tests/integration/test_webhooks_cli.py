"""``identify webhooks``: events written by a command while no server runs wait in the
outbox for ``identify serve``; dead letters are listed and marked to be sent again."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from server.engine.catalog.store import Store
from server.engine.project.config import load_project
from tests.conftest import write_project
from tests.receiver import webhook_yaml

from .test_label_cli import STRICT, photo_folder, run


def test_events_of_a_command_wait_and_dead_letters_can_be_resent(
    tmp_path: Path, small_refs: Path
) -> None:
    hooks = "webhooks:\n" + webhook_yaml("http://127.0.0.1:9/hook?token=t", name="ops")
    project = write_project(tmp_path, small_refs, STRICT + hooks)
    assert run("index", "--project", str(project))[0] == 0
    # Looking changes nothing; a server's first run with the webhook starts it from
    # the newest event (done here as the server does it).
    code, out, _ = run("webhooks", "show", "--project", str(project), "--json")
    assert code == 0 and json.loads(out)["webhooks"][0]["waiting"] == 0
    store = Store(load_project(project).db_path)
    try:
        last = store.last_event_id()  # what identify index told
        assert store.webhook_cursor("ops", start=last, create=False).cursor == last
        assert store.db.execute("select count(*) from webhook_cursors").fetchone()[0] == 0
        store.webhook_cursor("ops", start=store.last_event_id())
    finally:
        store.close()
    assert run("label", "--project", str(project), str(photo_folder(tmp_path)))[0] == 0
    db = load_project(project).db_path
    with sqlite3.connect(db) as conn:
        queued = conn.execute("select count(*) from review").fetchone()[0]
        told = conn.execute(
            "select count(*) from outbox where type = 'queue' and action = 'added'"
        ).fetchone()[0]
    assert queued >= 1 and told == queued  # each item told, with the item
    code, out, err = run("webhooks", "show", "--project", str(project))
    assert code == 0 and "ops  http://127.0.0.1:9/hook  stopped" in out
    assert f"{told} waiting" in out and "token" not in out and "identify serve" in err
    store = Store(db)
    try:
        newest = store.last_event_id()  # the last item the label run queued
        store.add_dead_letter("ops", newest, 8, "HTTP 500 Internal Server Error")
    finally:
        store.close()
    code, out, _ = run("webhooks", "show", "--project", str(project))
    assert f"dead letter 1: ops event {newest} (queue.added) after 8 attempt(s): HTTP 500" in out
    code, out, _ = run("webhooks", "resend", "--project", str(project), "--webhook", "ops")
    assert code == 0 and out.startswith("1 dead letter(s) marked")
    code, _, err = run("webhooks", "resend", "--project", str(project), "--webhook", "nope")
    assert code != 0 and "no webhook 'nope' (configured: ops)" in err
