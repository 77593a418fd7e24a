"""``identify reapply``: stored answers decided again as a user runs it: nothing moves
when nothing changed, thresholds moved move the answers, and a run killed with -9
resumes where it stopped, each answer counted once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from identify_tui.cli import main
from server.engine.catalog.store import Store
from server.engine.project.config import load_project
from tests.conftest import DEMO_QUERIES, write_project
from tests.integration.crash import seed_answers
from tests.integration.test_label_cli import STRICT


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def answers(db: Path) -> list[tuple[int, str | None, int]]:
    store = Store(db)
    try:
        return [
            (int(r[0]), r[1], int(r[2]))
            for r in store.db.execute("select id, label, matched from observations order by id")
        ]
    finally:
        store.close()


def test_reapply_moves_answers_only_when_something_changed(
    tmp_path: Path, small_refs: Path
) -> None:
    file = write_project(tmp_path, small_refs, STRICT)
    assert run("index", "--project", str(file))[0] == 0
    code, out, err = run("label", "--project", str(file), "--json", str(DEMO_QUERIES))
    assert code == 0, err
    labelled = json.loads(out)
    db = load_project(file).db_path
    before = answers(db)
    assert len(before) == 22

    code, out, err = run("reapply", "--project", str(file), "--json")
    assert code == 0, err
    same = json.loads(out)
    assert same["status"] == "done" and not same["resumed"]
    assert same["counts"]["seen"] == 22 and same["counts"]["unchanged"] == 22
    assert answers(db) == before

    # A stricter threshold: every accepted answer becomes unknown, and back again.
    file.write_text(file.read_text().replace("threshold: 0.74", "threshold: 2.5"))
    code, out, err = run("reapply", "--project", str(file))
    assert code == 0, err
    accepted = labelled["accepted"]
    assert f"0 newly labelled, 0 relabelled, {accepted} unlabelled" in out
    assert all(not matched for _, _, matched in answers(db))
    file.write_text(file.read_text().replace("threshold: 2.5", "threshold: 0.74"))
    code, out, err = run("reapply", "--project", str(file), "--json")
    assert json.loads(out)["counts"]["newly_labelled"] == accepted
    assert answers(db) == before


def test_a_reapplication_killed_mid_run_resumes_where_it_stopped(
    tmp_path: Path, small_refs: Path, embedder: object
) -> None:
    file = write_project(tmp_path, small_refs)
    assert run("index", "--project", str(file))[0] == 0
    project = load_project(file)
    spec = embedder.spec  # type: ignore[attr-defined]
    n = 20_000
    seed_answers(project.db_path, spec.space_id, spec.dim, n, seed=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "identify_tui.cli", "reapply", "--project", str(file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    cursor = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            store = Store(project.db_path)
            try:
                row = store.last_reapplication()
            finally:
                store.close()
            if row is not None and row.cursor > 0:
                cursor = row.cursor
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "it finished before it could be killed"
    store = Store(project.db_path)
    try:
        stopped = store.last_reapplication()
    finally:
        store.close()
    assert stopped is not None and stopped.status == "running"
    assert cursor <= stopped.cursor < stopped.upto
    code, out, err = run("reapply", "--project", str(file), "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["resumed"] and done["id"] == stopped.id and done["status"] == "done"
    # Every answer counted once: the batch the kill cut short was rolled back and done
    # again, none twice.
    assert done["counts"]["seen"] == n == done["total"]
