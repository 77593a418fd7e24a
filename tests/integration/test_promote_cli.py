"""``identify promote``: a separate taxonomy's auto-labels made references with no
server running, under the writer lock, the index brought in step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from identify_tui.cli import main
from server.engine.catalog.store import Store
from server.engine.catalog.vectors import open_or_none
from server.engine.live.service import Service
from server.engine.project.config import load_project
from tests.conftest import DEMO_QUERIES, write_project

SEPARATE = (
    "taxonomies:\n  - name: default\n    threshold: 0.6\n    margin: 0.02\n    mode: separate\n"
)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_promote_makes_references_of_auto_labels(
    tmp_path: Path, small_refs: Path, embedder: Any
) -> None:
    file = write_project(tmp_path, small_refs, SEPARATE)
    assert run("index", "--project", str(file))[0] == 0
    project = load_project(file)
    service = Service.open(project, embedder)
    try:
        prepared = service.prepare((DEMO_QUERIES / "known-brazil.jpg").read_bytes())
        [found] = service.identify_prepared(prepared, source="test")
        refs_before = len(service.live.store.active_references())
    finally:
        service.close()
    assert found.decision.label == "Brazil"
    code, out, err = run("promote", "--project", str(file), "--taxonomy", "default")
    assert code == 0, err
    expected = 1 if found.decision.score >= 0.85 else 0
    assert f"{expected} reference(s) made" in out
    code, out, err = run(
        "promote", "--project", str(file), "--taxonomy", "default", "--min-confidence", "0"
    )
    assert code == 0 and f"{1 - expected} reference(s) made" in out, (out, err)
    store = Store(project.db_path)
    try:
        refs = store.active_references()
        assert len(refs) == refs_before + 1 and refs[-1].source == "promote"
        [label], _ = store.auto_labels("default", 10)
        assert label.promoted_id == refs[-1].id
    finally:
        store.close()
    # The index file holds the new reference (not only after the next open's sync).
    saved = open_or_none(project, embedder)
    assert saved is not None
    keys = saved.keys()
    assert refs[-1].id in keys
    code, _, err = run("promote", "--project", str(file), "--taxonomy", "nope")
    assert code == 2 and "no taxonomy 'nope'" in err
    code, _, err = run("promote", "--project", str(file), "--taxonomy", "default", "--id", "999")
    assert code == 2 and "answer 999" in err
