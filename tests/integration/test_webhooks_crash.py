"""No event is lost by a crash: ``identify serve`` killed with SIGKILL while a client
writes and a flaky receiver leaves events undelivered; the restart delivers every one,
signed (see ``hooks.py``; the benchmark runs 20 kills)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from identify_tui.cli import main
from tests.conftest import write_project
from tests.receiver import Receiver, webhook_yaml

from .hooks import run_hook_kills
from .test_crash import EVERYTHING_A_MISS
from .test_serve_cli import free_port


def test_every_event_is_delivered_after_kills(tmp_path: Path, small_refs: Path) -> None:
    receiver = Receiver().start()
    try:
        hooks = "webhooks:\n" + webhook_yaml(receiver.url, extra="    attempts: 1000\n")
        project = write_project(tmp_path, small_refs, EVERYTHING_A_MISS + hooks)
        assert CliRunner().invoke(main, ["index", "--project", str(project)]).exit_code == 0
        run = run_hook_kills(project, free_port(), tmp_path, receiver, kills=3, seed=3)
    finally:
        receiver.stop()
    assert run.missing == [] and run.unsigned == 0
    assert run.untold == []  # every acknowledged change has its event
    # Something was written and told, and a kill left some of it undelivered.
    assert run.events >= 10 and run.writes >= 4
    assert sum(run.undelivered_at_kill) > 0
