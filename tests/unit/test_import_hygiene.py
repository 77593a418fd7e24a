"""Layering: the engine is headless, and the CLI's headless paths never load Textual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run(
        [str(lint), "--config", str(REPO / "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 3 kept, 0 broken" in proc.stdout


def test_headless_commands_do_not_import_textual_or_aiohttp() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from identify_tui.cli import main\n"
        "for cmd in ('index', 'verify', 'match', 'init', 'models', 'serve'):\n"
        "    CliRunner().invoke(main, [cmd, '--help'])\n"
        "import server.engine.verify, server.engine.indexer, server.engine.matching\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'aiohttp')]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
