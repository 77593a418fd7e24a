"""The engine end to end on real files: index, identify, second stage, rebuild, crashes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.engine.config import load_project
from server.engine.identifier import Identifier
from server.engine.images import load_image
from server.engine.indexer import build_index
from server.engine.store import Store
from server.engine.vector_index import VectorIndex
from tests.conftest import DEMO_QUERIES, write_project


@pytest.fixture()
def indexed(tmp_path: Path, small_refs: Path, embedder):  # type: ignore[no-untyped-def]
    project = load_project(write_project(tmp_path, small_refs))
    build_index(project, embedder)
    return project


def test_a_camera_photo_of_a_known_thing_is_identified(indexed, embedder) -> None:  # type: ignore[no-untyped-def]
    ident = Identifier.open(indexed, embedder)
    try:
        (d,) = ident.identify([load_image(DEMO_QUERIES / "known-pineapple.jpg")])
    finally:
        ident.close()
    assert d.matched and d.label == "Pineapple"
    assert d.candidates[0].label == "Pineapple" and d.margin > 0


def test_the_second_stage_finds_geometric_evidence_for_a_textured_thing(indexed, embedder) -> None:  # type: ignore[no-untyped-def]
    ident = Identifier.open(indexed, embedder)
    try:
        (ev,) = ident.evidence([load_image(DEMO_QUERIES / "known-pineapple.jpg")])
        ranked = ident.candidates(ev)
    finally:
        ident.close()
    top = ranked[0]
    assert top.label == "Pineapple"
    assert top.inliers is not None and top.inliers >= indexed.config.rerank.min_inliers
    assert top.score > top.cosine  # the geometric bonus was folded into the score
    others = [c for c in ranked[1:] if c.inliers is not None]
    assert others and all(c.inliers < indexed.config.rerank.min_inliers for c in others)


def test_reference_vectors_are_deterministic_across_builds(tmp_path: Path, small_refs: Path,
                                                            embedder) -> None:  # type: ignore[no-untyped-def]
    vectors = []
    for run in ("a", "b"):
        project = load_project(write_project(tmp_path / run, small_refs))
        build_index(project, embedder)
        store = Store(project.db_path)
        refs = store.active_references()
        model = f"{embedder.spec.model_id}#views={project.config.index.views}"
        got = store.embeddings([r.id for r in refs], model)
        vectors.append(np.stack([got[r.id] for r in refs]))
        store.close()
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)


def test_a_lost_index_is_rebuilt_from_the_database_without_embedding(indexed, embedder) -> None:  # type: ignore[no-untyped-def]
    indexed.index_path.unlink()
    summary = build_index(indexed, embedder)
    assert summary.embedded == 0 and summary.index_size == 6


def test_a_damaged_index_is_rebuilt_from_the_database(indexed, embedder) -> None:  # type: ignore[no-untyped-def]
    indexed.index_path.write_bytes(b"garbage" * 100)
    summary = build_index(indexed, embedder)
    assert summary.rebuilt_index and summary.embedded == 0 and summary.index_size == 6
    Identifier.open(indexed, embedder).close()


def test_a_crash_while_saving_leaves_the_previous_index_intact(indexed, embedder,
                                                               monkeypatch) -> None:  # type: ignore[no-untyped-def]
    before = indexed.index_path.read_bytes()
    index = VectorIndex.open(indexed.index_path, embedder.spec, "f16",
                             views=indexed.config.index.views)
    assert index is not None
    index.add([999], np.ones((1, embedder.spec.dim), np.float32))

    def crash(self, path: str) -> None:  # the process dies half-way through writing
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(type(index._index), "save", crash)
    with pytest.raises(OSError):
        index.save()
    assert indexed.index_path.read_bytes() == before
    Identifier.open(indexed, embedder).close()


def test_changing_the_number_of_views_asks_for_a_new_index(indexed, embedder, tmp_path: Path,
                                                           small_refs: Path) -> None:  # type: ignore[no-untyped-def]
    from server.engine.errors import IndexMismatchError

    changed = load_project(write_project(tmp_path, small_refs, extra="index:\n  views: 1\n"))
    with pytest.raises(IndexMismatchError, match="identify index"):
        Identifier.open(changed, embedder)
    summary = build_index(changed, embedder)
    assert summary.embedded == 6
    Identifier.open(changed, embedder).close()
