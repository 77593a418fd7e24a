"""Crash safety: ``identify serve`` killed with SIGKILL N times while a client adds,
imports and deletes references, labels review items, annotates in bulk, labels a
folder and re-applies over 20,000 stored answers; after each restart, how many
acknowledged writes are missing (target: none) and how many cut-short re-applications
resumed.

    python -m tests.benchmarks.bench_crash [--kills 25] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from click.testing import CliRunner

from identify_tui.cli import main as cli
from server.engine.project.config import load_project
from server.engine.vision.embedders import project_embedder
from tests.conftest import DEMO_REFS, REPO, write_project
from tests.integration.crash import run_kills, seed_answers
from tests.integration.test_serve_cli import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--answers", type=int, default=20_000, help="stored answers to re-apply")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "results" / "crash.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    try:
        refs = work / "refs"
        refs.mkdir()
        for name in ("Brazil", "Japan", "apple_red", "banana", "grapes", "India"):
            shutil.copy(DEMO_REFS / f"{name}.png", refs / f"{name}.png")
        project = write_project(
            work, refs, "taxonomies:\n  - name: default\n    threshold: 1.5\n    margin: 0.05\n"
        )
        assert CliRunner().invoke(cli, ["index", "--project", str(project)]).exit_code == 0
        spec = project_embedder(load_project(project).config).spec
        seed_answers(load_project(project).db_path, spec.space_id, spec.dim, args.answers)
        ledger, lost = run_kills(project, free_port(), work, args.kills, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "kills": args.kills,
        "acknowledged_writes": ledger.writes,
        "references_acknowledged": len(ledger.references),
        "deletes_acknowledged": len(ledger.deleted),
        "review_labels_acknowledged": len(ledger.resolved),
        "bulk_annotations_acknowledged": len(ledger.annotations),
        "files_labelled_acknowledged": len(ledger.labelled),
        "reapplications_started": len(ledger.reapplications),
        "reapplications_resumed": ledger.resumed,
        "lost": lost,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
