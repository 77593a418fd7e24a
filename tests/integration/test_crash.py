"""A crash at any moment loses no acknowledged write: ``identify serve`` killed with
SIGKILL while a client adds, imports and deletes references and labels review items
(see ``crash.py``; the benchmark runs 25 kills)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from identify_tui.cli import main
from server.engine.project.config import load_project
from tests.conftest import write_project

from .crash import run_kills, seed_answers
from .test_serve_cli import free_port

EVERYTHING_A_MISS = "taxonomies:\n  - name: default\n    threshold: 1.5\n    margin: 0.05\n"


def test_no_acknowledged_write_is_lost_over_kills(
    tmp_path: Path, small_refs: Path, embedder: Any
) -> None:
    project = write_project(tmp_path, small_refs, EVERYTHING_A_MISS)
    assert CliRunner().invoke(main, ["index", "--project", str(project)]).exit_code == 0
    seed_answers(load_project(project).db_path, embedder.spec.space_id, embedder.spec.dim, 5000)
    # Long enough a round for writes of every kind, even on a busy machine.
    ledger, lost = run_kills(project, free_port(), tmp_path, kills=3, seed=1, min_s=2.5, max_s=5.0)
    assert lost == []
    # The rounds did write (of every kind), so the check checked something.
    assert ledger.writes >= 6 and ledger.references and ledger.resolved
    assert ledger.annotations
