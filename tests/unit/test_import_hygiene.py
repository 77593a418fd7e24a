"""Layering: the engine is headless, and the CLI's headless paths never load Textual."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from tests.conftest import DEMO_QUERIES, DEMO_REFS, REPO


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
    # Every contract of the project file, however many it has: none may go unchecked.
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert f"Contracts: {len(contracts['contracts'])} kept, 0 broken" in proc.stdout


def test_every_tui_module_but_the_command_line_is_held_to_http_only() -> None:
    # The contract names the TUI's modules one by one (the command line may use the
    # workflows); a module added without its name there would go unchecked.
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    [http_only] = [c for c in contracts["contracts"] if c["name"].startswith("The TUI talks")]
    named = set(http_only["source_modules"])
    tui = REPO / "identify_tui"
    modules = {
        ".".join(("identify_tui", *p.relative_to(tui).with_suffix("").parts))
        for p in tui.rglob("*.py")
        if p.name != "__init__.py" or p.parent != tui
    }
    modules = {m.removesuffix(".__init__") for m in modules}
    unchecked = {
        m
        for m in modules
        if not m.startswith("identify_tui.cli")
        and not any(m == n or m.startswith(n + ".") for n in named)
    }
    assert not unchecked, f"add to the TUI's HTTP-only contract: {sorted(unchecked)}"


def test_headless_commands_do_not_import_textual_or_aiohttp(tmp_path: Path) -> None:
    """A real ``identify index`` and ``identify match`` (so imports inside the command
    bodies count too), then every command's help, load neither Textual nor aiohttp."""
    refs = tmp_path / "refs"
    refs.mkdir()
    for name in ("Brazil", "Japan"):
        shutil.copy(DEMO_REFS / f"{name}.png", refs / f"{name}.png")
    project = tmp_path / "tiny.yaml"
    project.write_text(
        f"references:\n  - path: {refs}\ndata_dir: {tmp_path / 'data'}\n"
        "model:\n  name: efficientnet-lite0\n  device: cpu\nindex:\n  views: 0\n",
        encoding="utf-8",
    )
    query = DEMO_QUERIES / "known-brazil.jpg"
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from identify_tui.cli import main\n"
        f"for args in (['index', '-p', {str(project)!r}],\n"
        f"             ['match', '-p', {str(project)!r}, {str(query)!r}]):\n"
        "    result = CliRunner().invoke(main, args)\n"
        "    assert result.exit_code == 0, (args, result.output, result.exception)\n"
        "for cmd in ('index', 'verify', 'train', 'match', 'init', 'models', 'serve', 'gc'):\n"
        "    CliRunner().invoke(main, [cmd, '--help'])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'aiohttp')]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _cycle(graph: Any, modules: set[str]) -> list[str] | None:
    """One import cycle among ``modules`` (depth-first search), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph.find_modules_directly_imported_by(module) & modules):
            if state.get(other) == 1:
                return [*path[path.index(other) :], other]
            if other not in state and (found := visit(other)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(modules):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_cycles_even_lazy_or_for_type_checking_only() -> None:
    import grimp  # import-linter's graph builder: it sees imports in functions and in
    # ``if TYPE_CHECKING`` blocks too

    for package in ("server", "identify_tui"):
        graph = grimp.build_graph(package)
        cycle = _cycle(graph, set(graph.modules))
        assert cycle is None, f"{package}: import cycle " + " -> ".join(cycle or [])
