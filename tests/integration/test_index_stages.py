"""``build_index``'s stages one at a time: scan, the diff by content hash, embedding,
writing, the index brought in step; and the CLI's one scan feeding the build."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from server.engine.catalog.store import Store
from server.engine.catalog.vectors import reference_vector_id, view_backgrounds
from server.engine.project.config import Project, load_project
from server.engine.project.references import scan_references
from server.engine.workflows import index_stages
from server.engine.workflows.index import build_index, index_project
from server.engine.workflows.index_stages import (
    DELETED,
    Embedded,
    Examined,
    IndexSummary,
    Known,
    Writer,
    diff,
    embed,
    scan,
    updated_index,
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


def test_diff_asks_to_embed_a_new_or_changed_file_and_nothing_of_an_indexed_one(
    project: Project,
    small_refs: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    files, _ = scan(project)
    new = diff(files[0], _known(project, embedder))
    assert (new.needs, new.error) == ("embedding", None) and new.data
    build_index(project, embedder)
    known = _known(project, embedder)
    same = diff(files[0], known)
    assert (same.needs, same.error, same.digest) == ("nothing", None, new.digest)
    shutil.copy(small_refs / "banana.png", files[0].path)  # same path, other content
    changed = diff(files[0], known)
    assert changed.needs == "embedding" and changed.digest != same.digest


def test_diff_asks_only_for_the_layout_of_a_file_indexed_before_layouts(
    project: Project,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    files, _ = scan(project)
    build_index(project, embedder)
    store = Store(project.db_path)
    try:
        store.db.execute("delete from layouts")
        store.db.commit()
    finally:
        store.close()
    examined = diff(files[0], _known(project, embedder))
    assert examined.needs == "layout"
    embedded = embed(examined, project, embedder, [])
    assert embedded.evidence is None and embedded.layout is not None


def test_diff_reports_a_deleted_reference_and_an_unreadable_file(
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
    assert diff(files[0], known).error is DELETED
    files[1].path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    broken = embed(diff(files[1], known), project, embedder, [])
    assert broken.error is not None and broken.evidence is None


def test_embed_makes_a_unit_vector_of_a_new_file_and_nothing_when_nothing_is_needed(
    project: Project,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    files, _ = scan(project)
    backgrounds = view_backgrounds()
    new = embed(diff(files[0], _known(project, embedder)), project, embedder, backgrounds)
    assert new.error is None and new.evidence is not None
    assert new.evidence.vector.shape == (embedder.spec.dim,)
    assert np.isclose(np.linalg.norm(new.evidence.vector), 1.0, atol=1e-5)
    assert new.size == Image.open(files[0].path).size
    nothing = Examined(files[0], new.digest, "nothing")
    assert embed(nothing, project, embedder, backgrounds) == Embedded(files[0], new.digest)


def _embedded(project: Project, embedder, known: Known) -> list[Embedded]:  # type: ignore[no-untyped-def]
    files, _ = scan(project)
    backgrounds = view_backgrounds()
    return [embed(diff(f, known), project, embedder, backgrounds) for f in files]


def test_writer_writes_in_batches_and_counts_what_it_skips(
    project: Project,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    vector_id = reference_vector_id(project, embedder)
    store = Store(project.db_path)
    try:
        known = Known.load(project, store, vector_id)
        items = _embedded(project, embedder, known)
        unreadable = Embedded(items[0].ref, "", error="not an image")
        done: list[int] = []
        writer = Writer(store, known, vector_id, IndexSummary(), done.append)
        for item in [*items[:5], unreadable]:
            writer.take(item, batch_size=2)
        assert len(store.active_references()) == 4  # two batches of two; one waits
        writer.flush()
        assert len(store.active_references()) == 5 and len(writer.keys) == 5
        assert writer.summary.embedded == 5 and sum(done) == 6
        assert writer.summary.skipped == [(str(items[0].ref.path), "not an image")]
        assert set(store.embeddings(writer.keys, vector_id)) == set(writer.keys)
        assert all(np.array_equal(v, i.evidence.vector) for v, i in zip(writer.vectors, items))
    finally:
        store.close()


def test_updated_index_adds_and_drops_the_writers_keys_or_rebuilds(
    project: Project,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    build_index(project, embedder)
    vector_id = reference_vector_id(project, embedder)
    store = Store(project.db_path)
    try:
        known = Known.load(project, store, vector_id)
        retired = next(iter(known.existing.values())).id
        with store.transaction():
            store.retire([retired])
        writer = Writer(store, known, vector_id, IndexSummary(), retired=[retired])
        index = updated_index(project, store, embedder, writer)
        assert retired not in index and len(index) == 5
        assert not writer.summary.rebuilt_index
        project.index_path.write_bytes(b"not an index")  # damaged: rebuilt from the store
        again = Writer(store, known, vector_id, IndexSummary())
        rebuilt = updated_index(project, store, embedder, again)
        assert len(rebuilt) == 5 and retired not in rebuilt and again.summary.rebuilt_index
    finally:
        store.close()


def test_build_index_uses_the_scan_it_is_given(
    project: Project,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    files, not_images = scan(project)
    summary = build_index(project, embedder, scanned=(files[:2], not_images))
    assert (summary.files, summary.embedded, summary.index_size) == (2, 2, 2)


def test_index_project_scans_once_and_counts_progress_against_that_scan(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    stages: list[tuple[str, int]] = []
    done: list[int] = []
    scans: list[object] = []

    def counted(config: object) -> object:
        scans.append(config)
        return scan_references(config)

    monkeypatch.setattr(index_stages, "scan_references", counted)

    from contextlib import contextmanager

    @contextmanager
    def stage(label: str, length: int):  # type: ignore[no-untyped-def]
        stages.append((label, length))
        yield done.append

    run = index_project(str(project.file), stage)
    assert len(scans) == 1
    assert stages == [("embedding", 6)]
    assert sum(done) == 6 and run.summary.embedded == 6
    assert run.space_id.startswith("efficientnet-lite0")
