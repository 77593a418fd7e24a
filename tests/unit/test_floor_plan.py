"""The shape the code keeps: small modules and short functions (STYLE.md), measured on
the shipped packages."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "identify_tui")
MEDIAN_MODULE_LINES = 150
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def test_modules_are_small() -> None:
    sizes = {
        p.relative_to(REPO): len(p.read_text(encoding="utf-8").splitlines()) for p in _modules()
    }
    too_big = {str(p): n for p, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_big, f"modules over {MAX_MODULE_LINES} lines: {too_big}"
    assert statistics.median(sizes.values()) <= MEDIAN_MODULE_LINES


def test_functions_are_short() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines})")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
