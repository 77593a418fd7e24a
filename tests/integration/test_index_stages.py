"""``build_index``'s stages one at a time: scan, the diff by content hash, embedding,
writing; and the CLI's one scan feeding the build."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from server.engine.catalog.store import Store
from server.engine.catalog.vectors import reference_vector_id, view_backgrounds
from server.engine.project.config import Project, load_project
from server.engine.workflows.index import (
    DELETED,
    Known,
    build_index,
    examine,
    index_project,
    scan,
)
from tests.conftest import write_project


@pytest.fixture()
def project(tmp_path: Path, small_refs: Path) -> Project:
    return load_project(write_project(tmp_path, small_refs))


def _known(project: Project, embedder) -> Known:  # type: ignore[no-untyped-def]
    store = Store(project.db_path)
    try:
        return Known.load(project, store, reference_vector_id(project, embedder))
    finally:
        store.close()


def test_scan_lists_reference_files_and_the_files_that_are_not_images(
    project: Project, small_refs: Path
) -> None:
    (small_refs / "notes.txt").write_text("not a picture")
    files, not_images = scan(project)
    assert sorted(f.label for f in files) == [
        "Apple Red",
        "Banana",
        "Brazil",
        "Grapes",
        "Japan",
        "Pineapple",
    ]
    assert [p.name for p, _ in not_images] == ["notes.txt"]


def test_examine_embeds_a_new_file_and_leaves_an_indexed_one_alone(
    project: Project,
    small_refs: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    files, _ = scan(project)
    backgrounds = view_backgrounds()
    new = examine(files[0], _known(project, embedder), project, embedder, backgrounds)
    assert new.error is None and new.evidence is not None
    assert new.evidence.vector.shape == (embedder.spec.dim,)
    assert np.isclose(np.linalg.norm(new.evidence.vector), 1.0, atol=1e-5)

    build_index(project, embedder)
    known = _known(project, embedder)
    same = examine(files[0], known, project, embedder, backgrounds)
    assert same.evidence is None and same.layout is None and same.error is None
    # A changed file (same path, other content) is embedded again.
    shutil.copy(small_refs / "banana.png", files[0].path)
    changed = examine(files[0], known, project, embedder, backgrounds)
    assert changed.evidence is not None and changed.digest != same.digest


def test_examine_reports_a_deleted_reference_and_an_unreadable_file(
    project: Project,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    files, _ = scan(project)
    build_index(project, embedder)
    store = Store(project.db_path)
    try:
        row = next(r for r in store.active_references() if r.path == str(files[0].path))
        store.delete_reference(row.id)
    finally:
        store.close()
    known = _known(project, embedder)
    assert examine(files[0], known, project, embedder, []).error is DELETED
    files[1].path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    broken = examine(files[1], known, project, embedder, [])
    assert broken.error is not None and broken.evidence is None


def test_build_index_uses_the_scan_it_is_given(
    project: Project,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    files, not_images = scan(project)
    summary = build_index(project, embedder, scanned=(files[:2], not_images))
    assert (summary.files, summary.embedded, summary.index_size) == (2, 2, 2)


def test_index_project_counts_progress_against_its_one_scan(project: Project) -> None:
    stages: list[tuple[str, int]] = []
    done: list[int] = []

    from contextlib import contextmanager

    @contextmanager
    def stage(label: str, length: int):  # type: ignore[no-untyped-def]
        stages.append((label, length))
        yield done.append

    run = index_project(str(project.file), stage)
    assert stages == [("embedding", 6)]
    assert sum(done) == 6 and run.summary.embedded == 6
    assert run.space_id.startswith("efficientnet-lite0")
