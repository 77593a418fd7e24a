"""``identify serve`` as a user runs it: a real process on a real port, stopped with
Ctrl-C; and the one-writer rule seen from the other commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from identify_tui.cli import main
from tests.conftest import write_project


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_then_stops_on_ctrl_c_and_owns_the_project(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs)
    assert CliRunner().invoke(main, ["index", "--project", str(project)]).exit_code == 0
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "identify_tui.cli",
            "serve",
            "--project",
            str(project),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"identify: serving t on http://127.0.0.1:{port}/", line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=30) as r:
            health = json.load(r)
        assert health["classes"] == 6 and health["project"] == "t"

        busy = CliRunner().invoke(main, ["index", "--project", str(project)])
        assert busy.exit_code == 2
        assert f"identify serve on http://127.0.0.1:{port}" in busy.stderr
        assert "using this project" in busy.stderr

        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        stopped_in = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Not a timing assertion on speed: a hung shutdown (a socket or thread left open)
    # would take the full 30 s above, or never end.
    assert stopped_in < 30
    assert CliRunner().invoke(main, ["index", "--project", str(project)]).exit_code == 0


def test_serve_refuses_a_public_host_without_a_token(tmp_path: Path, small_refs: Path) -> None:
    project = write_project(tmp_path, small_refs)
    result = CliRunner().invoke(main, ["serve", "--project", str(project), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--token" in result.stderr and "--insecure-no-auth" in result.stderr


def test_serve_without_an_index_says_to_run_index_first(tmp_path: Path, small_refs: Path) -> None:
    project = write_project(tmp_path, small_refs)
    result = CliRunner().invoke(
        main, ["serve", "--project", str(project), "--port", str(free_port())]
    )
    assert result.exit_code == 2
    assert "identify index" in result.stderr


def test_insecure_no_auth_prints_a_loud_warning(tmp_path: Path, small_refs: Path) -> None:
    project = write_project(tmp_path, small_refs)  # not indexed: it stops after the warning
    result = CliRunner().invoke(
        main,
        [
            "serve",
            "--project",
            str(project),
            "--host",
            "0.0.0.0",
            "--insecure-no-auth",
            "--port",
            str(free_port()),
        ],
    )
    assert "WARNING: serving without authentication on 0.0.0.0" in result.stderr
    assert result.exit_code == 2
