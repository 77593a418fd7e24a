"""``identify tui`` in a real terminal: tmux runs it against a running ``identify
serve``; keys go in with ``send-keys``, the screen comes out with ``capture-pane``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from identify_tui.cli import main
from tests.conftest import DEMO_QUERIES, write_project
from tests.integration.test_serve_cli import free_port

SESSION = "identify-tui-test"


def wait(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.fixture()
def served(tmp_path: Path, small_refs: Path) -> Iterator[str]:
    project = write_project(
        tmp_path,
        small_refs,
        "taxonomies:\n  - name: default\n    threshold: 0.8\n    margin: 0.05\n",
    )
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
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None and "serving" in proc.stdout.readline()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def tmux(*args: str, socket: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, *args], check=True, capture_output=True, text=True
    ).stdout


def test_review_and_stats_in_a_real_terminal(served: str, tmp_path: Path) -> None:
    assert shutil.which("tmux"), "the terminal test needs tmux: `apt-get install tmux`"
    request = urllib.request.Request(
        served + "/api/identify",
        data=(DEMO_QUERIES / "unknown-germany.jpg").read_bytes(),
        headers={"Content-Type": "image/jpeg"},
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        item = json.load(r)["objects"][0]["review_id"]
    assert item is not None
    socket = f"{SESSION}-{os.getpid()}"
    identify = str(Path(sys.executable).parent / "identify")
    env = f"env TERM=xterm-256color COLORTERM= {identify} tui --server {served}"
    tmux("new-session", "-d", "-s", SESSION, "-x", "80", "-y", "24", env, socket=socket)
    try:

        def screen() -> str:
            return tmux("capture-pane", "-p", "-t", SESSION, socket=socket)

        shown = wait(lambda: (s := screen()) and f"#{item}" in s and "Confirm" in s and s)
        # The item (marked ? for unknown in the list, its reason in the detail) and the
        # key footer.
        assert f"{item} ? " in shown and "below_threshold" in shown and "Correct" in shown
        # At 80x24 nothing is cut: every key of the screen, every screen's F-key, Quit.
        lines = shown.splitlines()
        assert "F1 Review  F2 Refs  F3 Thresh  F4 Live  F5 Stats  F6 Clust  q Quit" in lines[-2]
        for key in [
            "y Confirm",
            "c Correct",
            "n None",
            "x Nothing",
            "s Skip",
            "u Undo",
            "space Select",
            "w Whole",
        ]:
            assert key in lines[-1], (key, lines[-1])
        tmux("send-keys", "-t", SESSION, "x", socket=socket)

        def status() -> str:
            with urllib.request.urlopen(f"{served}/api/review/{item}", timeout=10) as r:
                return str(json.load(r)["status"])

        wait(lambda: status() == "false_positive")
        wait(lambda: "Nothing to review" in screen())
        tmux("send-keys", "-t", SESSION, "F5", socket=socket)
        stats = wait(lambda: (s := screen()) and "pending" in s and s)
        assert "queue 0 pending" in stats and "false positive" in stats
        tmux("send-keys", "-t", SESSION, "q", socket=socket)  # q quits (Ctrl+Q too)
        wait(
            lambda: (
                SESSION
                not in subprocess.run(
                    ["tmux", "-L", socket, "list-sessions"],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
            )
        )
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
