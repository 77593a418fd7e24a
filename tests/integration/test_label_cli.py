"""``identify label``: a folder auto-labelled as a user runs it, resumable by content,
its labels exported; and through a real server process while one holds the project."""

from __future__ import annotations

import csv
import json
import shutil
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from identify_tui.cli import main
from server.engine.catalog.store import Store
from server.engine.project.config import load_project
from tests.conftest import DEMO_QUERIES, write_project
from tests.integration.crash import Server
from tests.integration.test_serve_cli import free_port

STRICT = "taxonomies:\n  - name: default\n    threshold: 0.74\n    margin: 0.02\n"
"""A threshold the orange (closest to the red apple) stays under."""
QUERIES = ["known-brazil.jpg", "known-japan.jpg", "known-banana.jpg", "unknown-orange.jpg"]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def photo_folder(root: Path) -> Path:
    """Four demo photos, one in a subfolder, one hidden (left out), and a copy."""
    folder = root / "photos"
    (folder / "shelf").mkdir(parents=True)
    (folder / ".cache").mkdir()
    for name in QUERIES[:3]:
        shutil.copy(DEMO_QUERIES / name, folder / name)
    shutil.copy(DEMO_QUERIES / QUERIES[3], folder / "shelf" / QUERIES[3])
    shutil.copy(DEMO_QUERIES / QUERIES[0], folder / "shelf" / "same-as-brazil.jpg")
    shutil.copy(DEMO_QUERIES / QUERIES[1], folder / ".cache" / "hidden.jpg")
    return folder


def test_label_decides_a_folder_once_and_exports_its_labels(
    tmp_path: Path, small_refs: Path
) -> None:
    file = write_project(tmp_path, small_refs, STRICT)
    assert run("index", "--project", str(file))[0] == 0
    folder = photo_folder(tmp_path)
    export = tmp_path / "labels.csv"
    code, out, err = run(
        "label", "--project", str(file), "--json", "--export", str(export), str(folder)
    )
    assert code == 0, err
    summary = json.loads(out)
    # Five files (the hidden one left out); the copy of Brazil is found by its content.
    assert summary["pictures"] == 5
    assert summary["labelled"] == 4 and summary["already_labelled"] == 1
    assert summary["unreadable"] == 0
    assert summary["objects"] == 5  # the copy reports the objects of its original
    assert summary["classes"].get("Brazil") == 2 and summary["classes"].get("Japan") == 1
    # Every miss is queued (with a picture that passes the quality gate).
    assert summary["accepted"] + summary["queued"] == summary["objects"]
    assert summary["queued"] >= 1
    assert summary["coverage"] == round(summary["accepted"] / summary["objects"], 4)
    with export.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    assert {Path(r["path"]).name for r in rows} == {
        "known-brazil.jpg", "known-japan.jpg", "known-banana.jpg", "unknown-orange.jpg",
        "same-as-brazil.jpg",
    }  # fmt: skip
    orange = next(r for r in rows if r["path"].endswith("unknown-orange.jpg"))
    assert orange["label"] == "" and orange["status"] == "pending" and orange["review_id"]

    project = load_project(file)
    store = Store(project.db_path)
    try:
        observations = store.observation_counts()[0]
        pending = store.pending_count()
        items, _ = store.review_items("pending")
        assert items and all(i.source == "label" for i in items)
    finally:
        store.close()
    assert observations == 4 and pending >= 1

    # A second run decides nothing: every file is known by its content.
    code, out, err = run("label", "--project", str(file), "--json", str(folder))
    assert code == 0, err
    again = json.loads(out)
    assert again["labelled"] == 0 and again["already_labelled"] == 5
    assert again["objects"] == 5 and again["classes"] == summary["classes"]
    store = Store(project.db_path)
    try:
        assert store.observation_counts()[0] == observations
    finally:
        store.close()

    # JSON Lines export; anything else is refused before any work.
    jsonl = tmp_path / "labels.jsonl"
    assert run("label", "--project", str(file), "--export", str(jsonl), str(folder))[0] == 0
    lines = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 5 and {"label", "matched", "x0", "status"} <= set(lines[0])
    code, _, err = run("label", "--project", str(file), "--export", "x.txt", str(folder))
    assert code == 2 and ".csv or .jsonl" in err


def test_label_reports_garbage_files_and_keeps_the_rest(tmp_path: Path, small_refs: Path) -> None:
    file = write_project(tmp_path, small_refs)
    assert run("index", "--project", str(file))[0] == 0
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "notes.jpg").write_bytes(b"this is not a picture")
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes((DEMO_QUERIES / QUERIES[0]).read_bytes()[:300])
    (folder / "readme.txt").write_text("not an image suffix: left out")
    shutil.copy(DEMO_QUERIES / QUERIES[1], folder / "ok.jpg")
    code, out, err = run("label", "--project", str(file), "--json", str(folder))
    assert code == 2  # some files could not be read; the others are labelled
    summary = json.loads(out)
    assert summary["pictures"] == 4 and summary["unreadable"] == 3 and summary["labelled"] == 1
    assert {Path(e["path"]).name for e in summary["errors"]} == {
        "notes.jpg", "empty.png", "truncated.jpg",
    }  # fmt: skip
    assert "notes.jpg" in err
    code, _, err = run("label", "--project", str(file), str(tmp_path / "nowhere"))
    assert code == 2 and "no file or folder" in err
    empty = tmp_path / "no-images"
    empty.mkdir()
    code, _, err = run("label", "--project", str(file), str(empty))
    assert code == 2 and "no image files" in err


def test_label_reapply_and_promote_go_through_the_server_that_holds_the_project(
    tmp_path: Path, small_refs: Path
) -> None:
    file = write_project(tmp_path, small_refs)
    assert run("index", "--project", str(file))[0] == 0
    folder = photo_folder(tmp_path)
    port = free_port()
    server = Server(file, port)
    server.start()
    try:
        code, out, err = run("label", "--project", str(file), "--json", str(folder))
        assert code == 0, err
        assert f"labelling through http://127.0.0.1:{port}" in err
        summary = json.loads(out)
        assert summary["labelled"] == 4 and summary["already_labelled"] == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=30) as r:
            health = json.load(r)
        assert health["queue"]["pending"] == summary["queued"]
        code, out, _ = run("label", "--project", str(file), "--json", str(folder))
        assert code == 0 and json.loads(out)["labelled"] == 0
        # The other commands that write go through it too.
        code, out, err = run("reapply", "--project", str(file), "--json")
        assert code == 0 and "re-applying through" in err, err
        assert json.loads(out)["counts"]["seen"] == 4
        code, _, err = run("promote", "--project", str(file), "--taxonomy", "default")
        assert code == 2 and "promoting through" in err and "unified" in err
    finally:
        server.stop()
