"""Shared fixtures: real projects on real files, with the real offline embedder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DEMO_REFS = REPO / "examples" / "demo" / "references"
DEMO_QUERIES = REPO / "examples" / "demo" / "queries"


def write_project(root: Path, refs: Path, extra: str = "") -> Path:
    """A project file in ``root/projects`` for the offline embedder."""
    (root / "projects").mkdir(parents=True, exist_ok=True)
    path = root / "projects" / "t.yaml"
    path.write_text(
        f"references:\n  - path: {refs}\nmodel:\n  name: efficientnet-lite0\n"
        f"  batch_size: 4\nverify:\n  queries_per_reference: 2\n{extra}",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The real offline embedder, loaded once per test session."""
    from server.engine.project.config import ModelConfig
    from server.engine.vision.embedders import create_embedder

    return create_embedder(ModelConfig(name="efficientnet-lite0", device="cpu"))


@pytest.fixture()
def small_refs(tmp_path: Path) -> Path:
    """Six demo references copied to a temporary folder."""
    refs = tmp_path / "refs"
    refs.mkdir()
    for name in ["Brazil", "Japan", "apple_red", "banana", "pineapple", "grapes"]:
        shutil.copy(DEMO_REFS / f"{name}.png", refs / f"{name}.png")
    return refs


@pytest.fixture()
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    """Run the test with ``tmp_path`` as the working folder."""
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)
