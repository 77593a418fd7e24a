"""Several things in one picture: the quad detector finds two flags laid on a table,
each is straightened and identified on its own, through ``identify match`` and the
server's ``POST /api/identify``; a detector that finds nothing falls back to locating."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from server.engine.project.config import Project, load_project
from server.engine.vision.embedders import Embedder
from server.engine.vision.images import encode_jpeg, load_image
from server.engine.workflows.index import build_index
from server.engine.workflows.match import match_files
from tests.conftest import DEMO_REFS, write_project

BRAZIL_AT = np.float32([[60, 80], [300, 110], [290, 290], [50, 260]])
JAPAN_AT = np.float32([[360, 60], [600, 50], [610, 220], [370, 240]])


def _scene(seed: int = 0) -> np.ndarray:
    """The Brazil and Japan reference photos warped onto a noisy wooden table, tilted
    (a table that contrasts with the flags' borders: the edge finder needs one)."""
    rng = np.random.default_rng(seed)
    scene = np.clip(rng.normal((140, 100, 70), 10, (400, 660, 3)), 0, 255).astype(np.uint8)
    for name, at in (("Brazil", BRAZIL_AT), ("Japan", JAPAN_AT)):
        flag = load_image(DEMO_REFS / f"{name}.png")
        h, w = flag.shape[:2]
        src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
        warp = cv2.getPerspectiveTransform(src, at)
        warped = cv2.warpPerspective(flag, warp, scene.shape[1::-1])
        mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), warp, scene.shape[1::-1])
        scene[mask > 0] = warped[mask > 0]
    return scene


def _match_table(project: Project, embedder: Embedder, tmp_path: Path) -> dict[str, Any]:
    """``identify match`` of the table with both flags, as JSON."""
    photo = tmp_path / "table.jpg"
    photo.write_bytes(encode_jpeg(_scene(), 92))
    (result,) = match_files(project, embedder, [photo], record=False)
    return dict(result.to_json())


@pytest.fixture()
def quad_project(tmp_path: Path, small_refs: Path, embedder) -> Project:  # type: ignore[no-untyped-def]
    # Tracks last a minute: a busy machine must not time them out between frames.
    extra = "detector:\n  kind: quad\nreview:\n  track_timeout_s: 60\n"
    project = load_project(write_project(tmp_path, small_refs, extra))
    build_index(project, embedder)
    return project


def test_match_reports_each_flag_with_its_box_and_corners(
    quad_project: Project,
    embedder,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    body = _match_table(quad_project, embedder, tmp_path)
    objects = {o["label"]: o for o in body["objects"]}
    assert set(objects) == {"Brazil", "Japan"}, body
    for label, at in (("Brazil", BRAZIL_AT), ("Japan", JAPAN_AT)):
        quad = np.array(objects[label]["quad"])
        assert np.abs(quad - at).max() <= 5.0  # pixels, on flags about 250 px wide
        x0, y0, x1, y1 = objects[label]["bbox"]
        assert (x0, y0) <= tuple(at.min(axis=0) + 1) and (x1, y1) >= tuple(at.max(axis=0) - 1)
    assert "detector_found_nothing" not in body


def test_a_picture_with_no_quad_falls_back_to_locating_and_says_so(
    quad_project: Project,
    embedder,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    bare = tmp_path / "bare.jpg"
    rng = np.random.default_rng(1)
    bare.write_bytes(
        encode_jpeg(np.clip(rng.normal(90, 8, (300, 400, 3)), 0, 255).astype(np.uint8), 92)
    )
    (result,) = match_files(quad_project, embedder, [bare], record=False)
    body = result.to_json()
    assert body["detector_found_nothing"] is True
    assert len(body["objects"]) == 1 and body["objects"][0]["quad"] is None


async def test_the_server_says_when_the_detector_found_nothing(
    quad_project: Project,
    embedder,  # type: ignore[no-untyped-def]
    aiohttp_client: Any,
) -> None:
    from server.http.app import create_app
    from server.http.config import ServeConfig

    client = await aiohttp_client(
        create_app(ServeConfig(project=quad_project), embedder=lambda c: embedder)
    )
    rng = np.random.default_rng(1)
    bare = encode_jpeg(np.clip(rng.normal(90, 8, (300, 400, 3)), 0, 255).astype(np.uint8), 92)
    for picture, found_nothing in ((bare, True), (encode_jpeg(_scene(), 92), False)):
        resp = await client.post(
            "/api/identify", data=picture, headers={"Content-Type": "image/jpeg"}
        )
        body = await resp.json()
        assert resp.status == 200 and body["image_size"] in ([400, 300], [660, 400]), body
        said = [o.get("detector_found_nothing", False) for o in body["objects"]]
        assert said == [found_nothing] * len(said), body


async def test_the_server_identifies_and_queues_each_thing_apart(
    quad_project: Project,
    embedder,  # type: ignore[no-untyped-def]
    aiohttp_client,  # type: ignore[no-untyped-def]
) -> None:
    # Japan's reference goes, so its flag is an unknown thing beside a known one.
    from server.engine.catalog.store import Store
    from server.http.app import create_app
    from server.http.config import ServeConfig

    store = Store(quad_project.db_path)
    try:
        japan = next(r.id for r in store.active_references() if r.label == "Japan")
    finally:
        store.close()
    app = create_app(ServeConfig(project=quad_project), embedder=lambda c: embedder)
    client = await aiohttp_client(app)
    assert (await client.delete(f"/api/references/{japan}")).status == 200
    data = encode_jpeg(_scene(), 92)
    for _ in range(2):  # the same picture again: each item is counted, not queued twice
        resp = await client.post("/api/identify", data=data, headers={"Content-Type": "image/jpeg"})
        body = await resp.json()
        assert resp.status == 200, body
    by_label = {o["label"]: o for o in body["objects"]}
    assert set(by_label) == {"Brazil", None}, body
    assert by_label["Brazil"]["review_id"] is None and by_label[None]["review_id"] is not None
    item = await (await client.get(f"/api/review/{by_label[None]['review_id']}")).json()
    assert item["seen"] == 2 and item["box"] is not None
    x0, _, x1, _ = item["box"]  # the stored picture is smaller; the box is on the right
    assert x0 > (x1 - x0) / 2
    page = await (await client.get("/api/review")).json()
    assert page["total"] == 1


def test_live_frames_keep_one_track_per_thing(
    quad_project: Project,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    from server.engine.live.service import Service

    service = Service.open(quad_project, embedder)
    try:
        frames = [_scene(seed) for seed in range(3)]  # the same table, new noise each frame
        seen = [
            service.identify_prepared(service.prepare(f), source="cam", live=True) for f in frames
        ]
    finally:
        service.close()
    tracks = [{o.decision.label: o.track_id for o in objects} for objects in seen]
    assert set(tracks[0]) == {"Brazil", "Japan"}
    assert tracks[0]["Brazil"] != tracks[0]["Japan"]
    assert tracks[0] == tracks[1] == tracks[2]  # each thing keeps its own track
    assert all(o.quad is not None for objects in seen for o in objects)


def test_each_straightened_flag_is_compared_with_its_reference_pixel_by_pixel(
    quad_project: Project,
    embedder,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    for found in _match_table(quad_project, embedder, tmp_path)["objects"]:
        top, *others = found["candidates"]
        assert top["label"] == found["label"]
        # The straightened crop is aligned with its own reference closely, and far less
        # with any other flag of the shortlist.
        assert top.get("aligned", 0.0) > 0.8, top
        assert all(c.get("aligned", -1.0) < top["aligned"] - 0.2 for c in others), others


def test_flat_references_held_in_memory_are_bounded(
    quad_project: Project,
    embedder,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server.engine.decide import second_stage
    from server.engine.decide.identifier import Identifier

    monkeypatch.setattr(second_stage, "FLAT_CACHE", 2)
    ident = Identifier.open(quad_project, embedder)
    try:
        refs = ident.store.active_references()
        assert len(refs) > 2
        flats = {r.label: ident.reference_flat(r.id) for r in refs}
        assert flats["Brazil"] is not None and flats["Japan"] is not None  # flags are flat
        assert len(ident._ref_flats) == 2  # the latest two, not every one
        again = ident.reference_flat(refs[0].id)  # read again from its file
        assert (again is None) == (flats[refs[0].label] is None)
    finally:
        ident.close()


@pytest.mark.parametrize(("reach", "compared"), [(1, 1), (6, 2)])
def test_the_aligned_comparison_reaches_past_the_keypoint_shortlist(
    quad_project: Project,
    embedder,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    reach: int,
    compared: int,
) -> None:
    # Keypoints for the best class only; the aligned comparison for the best ``reach``
    # classes, of which two (the flags) are flat: each flag is compared with both flags
    # when it reaches them, with its best class alone when it does not.
    config = quad_project.config
    rerank = replace(config.rerank, shortlist=1, aligned_shortlist=reach)
    project = replace(quad_project, config=replace(config, rerank=rerank))
    for found in _match_table(project, embedder, tmp_path)["objects"]:
        aligned = [c for c in found["candidates"] if "aligned" in c]
        assert len(aligned) == compared, found["candidates"]
        assert aligned[0]["label"] == found["label"]
        assert sum("inliers" in c for c in found["candidates"]) == 1


def test_a_detected_unknown_is_queued_once_per_track_with_its_straightened_crop(
    tmp_path: Path,
    small_refs: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    from server.engine.live.service import Service

    (small_refs / "Japan.png").unlink()  # Japan is on the table but unknown
    extra = "detector:\n  kind: quad\nreview:\n  track_timeout_s: 60\n  min_track_frames: 2\n"
    project = load_project(write_project(tmp_path, small_refs, extra))
    build_index(project, embedder)
    events: list[dict[str, Any]] = []
    service = Service.open(project, embedder, on_event=events.append)
    try:
        for seed in range(5):  # one appearance of each thing, five frames long
            service.identify_prepared(service.prepare(_scene(seed)), source="cam", live=True)
        items, total = service.review_items()
    finally:
        service.close()
    assert total == 1, items  # Japan's track, once; Brazil is known
    (item,) = items
    assert item.track_id is not None and item.box is not None
    # What was identified, straightened corner to corner: Japan's white field with its
    # red disc in the middle, at the reference's proportions (3:2), not the tilted box.
    assert item.region_path is not None
    crop = load_image(Path(item.region_path))
    h, w = crop.shape[:2]
    assert 1.3 < w / h < 1.7
    centre, border = crop[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3], crop[: h // 8]
    assert centre[..., 0].mean() > 150 > centre[..., 1].mean()  # red
    assert border.mean() > 200  # white
    queued = [e for e in events if e["type"] == "queue"]
    assert [e["action"] for e in queued] == ["added"]
