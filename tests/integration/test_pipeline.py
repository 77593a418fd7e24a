"""The engine end to end on real files: index, identify, second stage, rebuild, crashes."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from server.engine.catalog.store import Store
from server.engine.catalog.vector_index import VectorIndex
from server.engine.decide.identifier import Identifier
from server.engine.project.config import load_project
from server.engine.vision import backdrops, synth
from server.engine.vision.images import load_image
from server.engine.workflows.index import build_index
from tests.conftest import DEMO_QUERIES, DEMO_REFS, write_project


@pytest.fixture()
def indexed(tmp_path: Path, small_refs: Path, embedder):  # type: ignore[no-untyped-def]
    project = load_project(write_project(tmp_path, small_refs))
    build_index(project, embedder)
    return project


def _ranked(project, embedder, query: str):  # type: ignore[no-untyped-def]
    """A demo query photo's evidence and its ranking through the project's index."""
    ident = Identifier.open(project, embedder)
    try:
        (ev,) = ident.evidence([load_image(DEMO_QUERIES / query)])
        return ev, ident.candidates(ev)
    finally:
        ident.close()


def test_a_camera_photo_of_a_known_thing_is_identified(indexed, embedder) -> None:  # type: ignore[no-untyped-def]
    ident = Identifier.open(indexed, embedder)
    try:
        (d,) = ident.identify([load_image(DEMO_QUERIES / "known-pineapple.jpg")])
    finally:
        ident.close()
    assert d.matched and d.label == "Pineapple"
    assert d.candidates[0].label == "Pineapple" and d.margin > 0


def test_the_second_stage_finds_geometric_evidence_for_a_textured_thing(indexed, embedder) -> None:  # type: ignore[no-untyped-def]
    _, ranked = _ranked(indexed, embedder, "known-pineapple.jpg")
    top = ranked[0]
    assert top.label == "Pineapple"
    assert top.inliers is not None and top.inliers >= indexed.config.rerank.min_inliers
    assert top.score > top.cosine  # the geometric bonus was folded into the score
    others = [c for c in ranked[1:] if c.inliers is not None]
    assert others and all(c.inliers < indexed.config.rerank.min_inliers for c in others)


def test_reference_vectors_are_deterministic_across_builds(
    tmp_path: Path, small_refs: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
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


def test_a_crash_while_saving_leaves_the_previous_index_intact(
    indexed, embedder, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    before = indexed.index_path.read_bytes()
    index = VectorIndex.open(
        indexed.index_path, embedder.spec, "f16", views=indexed.config.index.views
    )
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


def test_changing_the_number_of_views_asks_for_a_new_index(
    indexed, embedder, tmp_path: Path, small_refs: Path
) -> None:  # type: ignore[no-untyped-def]
    from server.engine.errors import IndexMismatchError

    changed = load_project(write_project(tmp_path, small_refs, extra="index:\n  views: 1\n"))
    with pytest.raises(IndexMismatchError, match="identify index"):
        Identifier.open(changed, embedder)
    summary = build_index(changed, embedder)
    assert summary.embedded == 6
    Identifier.open(changed, embedder).close()


def test_a_thing_small_in_a_busy_frame_is_located_and_identified(indexed, embedder) -> None:  # type: ignore[no-untyped-def]
    """Camera-like frames (each reference warped onto a real photo, a third to half of
    the frame): the located box is where the thing is, and the answer is right more
    often than from the whole frame."""
    from dataclasses import replace

    from server.engine.vision import synth
    from server.engine.vision.backdrops import BACKGROUNDS_DIR
    from server.engine.vision.locate import iou

    rng = np.random.default_rng(7)
    backgrounds = backdrops.load_backgrounds(sorted(BACKGROUNDS_DIR.glob("*.jpg")), (640, 480))
    ident = Identifier.open(indexed, embedder)
    whole_only = Identifier(
        replace(
            indexed,
            config=replace(indexed.config, locate=replace(indexed.config.locate, enabled=False)),
        ),
        embedder,
        ident.store,
        ident.index,
    )
    located_right = whole_right = 0
    overlaps = []
    try:
        for i, ref in enumerate(sorted(indexed.config.references[0].path.glob("*.png"))):
            view = synth.camera_view(
                load_image(ref, keep_alpha=True),
                backgrounds[i % len(backgrounds)],
                rng,
                strength=0.5,
            )
            decision, region = ident.identify_picture(view.frame)
            truth = ref.stem.replace("_", " ").title()
            located_right += decision.candidates[0].label == truth
            whole = whole_only.identify_picture(view.frame)[0]
            whole_right += whole.candidates[0].label == truth
            box = region.box or (0, 0, 640, 480)
            overlaps.append(iou(box, view.bbox))
    finally:
        ident.close()
    assert located_right >= whole_right and located_right >= 5, (located_right, whole_right)
    assert np.median(overlaps) >= 0.3, overlaps


@pytest.mark.parametrize("shape", [(8, 8), (12, 1000), (1000, 12), (31, 33)])
def test_tiny_and_extreme_pictures_are_identified_without_error(indexed, embedder, shape) -> None:  # type: ignore[no-untyped-def]
    image = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    ident = Identifier.open(indexed, embedder)
    try:
        decision, region = ident.identify_picture(image)
    finally:
        ident.close()
    assert decision.candidates  # a ranking, whatever it says
    if region.box is not None:
        x0, y0, x1, y1 = region.box
        assert 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]


def test_the_box_follows_the_reference_outline_when_geometry_is_found(indexed, embedder) -> None:  # type: ignore[no-untyped-def]
    """Textured things seen at an angle: the second stage's homography maps the
    reference's corners into the picture, so the box is the thing's, not a grid window."""
    from server.engine.vision import synth
    from server.engine.vision.backdrops import BACKGROUNDS_DIR
    from server.engine.vision.locate import iou

    background = backdrops.load_backgrounds([BACKGROUNDS_DIR / "brick.jpg"], (640, 480))[0]
    folder = indexed.config.references[0].path
    min_inliers = indexed.config.rerank.min_inliers
    found = 0
    ident = Identifier.open(indexed, embedder)
    try:
        for name, label in (("pineapple", "Pineapple"), ("grapes", "Grapes"), ("Brazil", "Brazil")):
            for seed in range(3):
                view = synth.camera_view(
                    load_image(folder / f"{name}.png", keep_alpha=True),
                    background,
                    np.random.default_rng(seed),
                    strength=0.3,
                )
                decision, region = ident.identify_picture(view.frame)
                assert decision.label == label
                if decision.candidates[0].inliers < min_inliers:
                    continue
                found += 1
                (x0, y0), (x1, y1) = view.quad.min(axis=0), view.quad.max(axis=0)
                truth = (max(0, x0), max(0, y0), min(640, x1), min(480, y1))
                assert region.box is not None and iou(region.box, truth) >= 0.8, (
                    name,
                    seed,
                    region.box,
                    truth,
                )
    finally:
        ident.close()
    assert found >= 7


def test_colour_layout_tells_a_flag_from_its_colours_in_another_order(
    tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    # India and India upside down: the same colours, pooled by the global embedding to
    # nearly one vector, and too little texture for keypoints. The layout decides.
    refs = tmp_path / "refs"
    refs.mkdir()
    for name in ("India", "Japan", "Sweden", "banana"):
        shutil.copy(DEMO_REFS / f"{name}.png", refs / f"{name}.png")
    india = cv2.imread(str(DEMO_REFS / "India.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(refs / "India_upside_down.png"), india[::-1])
    project = load_project(write_project(tmp_path, refs))
    build_index(project, embedder)
    rng = np.random.default_rng(2)
    crops = synth.camera_crops(
        india[:, :, 2::-1].copy(),
        [backdrops.fallback_background(rng, (640, 480))],
        rng,
        4,
        strength=1.0,
    )
    ident = Identifier.open(project, embedder)
    try:
        evidence = ident.evidence(crops)
        with_layout = [ident.candidates(ev) for ev in evidence]
        without = [ident.candidates(replace(ev, layouts=None)) for ev in evidence]
    finally:
        ident.close()
    for ranked in with_layout:
        by_label = {c.label: c for c in ranked}
        right, twin = by_label["India"], by_label["India Upside Down"]
        assert ranked[0].label == "India"
        assert right.appearance is not None and twin.appearance is not None
        assert right.appearance > twin.appearance + 0.1
        assert "appearance" in right.to_json()
    # Without the layout (global embedding and keypoints only) the twin wins most of them.
    assert sum(plain[0].label == "India Upside Down" for plain in without) >= 2


def test_an_index_from_before_colour_layouts_gets_them_without_embedding(indexed, embedder) -> None:  # type: ignore[no-untyped-def]
    store = Store(indexed.db_path)
    with store.db.conn:
        store.db.execute("delete from layouts")
    store.close()
    summary = build_index(indexed, embedder)
    assert summary.embedded == 0 and summary.unchanged == 6
    store = Store(indexed.db_path)
    try:
        assert store.layout_ids() == {r.id for r in store.active_references()}
    finally:
        store.close()


def test_with_appearance_off_no_layout_is_computed_or_used(
    tmp_path: Path, small_refs: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    project = load_project(write_project(tmp_path, small_refs, "rerank:\n  appearance: 0\n"))
    build_index(project, embedder)
    ev, ranked = _ranked(project, embedder, "known-pineapple.jpg")
    assert ev.layouts is None
    assert all(c.appearance is None for c in ranked)
    assert ranked[0].label == "Pineapple" and ranked[0].inliers is not None


def test_a_textureless_thing_gets_a_box_of_its_own_shape_from_its_colour_layout(
    tmp_path: Path, small_refs: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    """Flags have too little texture for a homography: without the layout search the
    box is a square grid window; with it, a box of the flag's shape where its colours
    are, identified as one more region."""
    from server.engine.vision.backdrops import BACKGROUNDS_DIR
    from server.engine.vision.locate import iou

    backgrounds = backdrops.load_backgrounds(sorted(BACKGROUNDS_DIR.glob("*.jpg"))[:4], (640, 480))
    projects = {
        on: load_project(
            write_project(
                tmp_path / str(on), small_refs, f"locate:\n  layout_search: {str(on).lower()}\n"
            )
        )
        for on in (True, False)
    }
    for project in projects.values():
        build_index(project, embedder)
    idents = {on: Identifier.open(p, embedder) for on, p in projects.items()}
    overlaps: dict[bool, list[float]] = {True: [], False: []}
    try:
        rng = np.random.default_rng(4)
        for i in range(6):
            ref = load_image(small_refs / ("Japan.png" if i % 2 else "Brazil.png"), keep_alpha=True)
            view = synth.camera_view(ref, backgrounds[i % 4], rng, strength=0.5)
            for on, ident in idents.items():
                regions = ident.regions(view.frame)
                assert len(regions) == 1 + projects[on].config.locate.candidates + on
                _decision, region = ident.decide_regions(regions)
                overlaps[on].append(iou(region.box or (0, 0, 640, 480), view.bbox))
    finally:
        for ident in idents.values():
            ident.close()
    assert np.median(overlaps[True]) > np.median(overlaps[False]), overlaps
    assert np.median(overlaps[True]) >= 0.6, overlaps
