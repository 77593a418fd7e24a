"""Detectors: the quad finder on drawn scenes with known corners, rectification, the
quad checks, the whole-picture fallback, and YOLO models built from Ultralytics' own
``.yaml`` files (real architectures, untrained weights) loaded offline."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from server.engine.errors import ModelUnavailableError, ProjectConfigError
from server.engine.project.config import DetectorConfig
from server.engine.vision import detectors
from server.engine.vision.detectors.quad import QuadFinder
from server.engine.vision.rectify import is_usable, order_corners, rectified_size, rectify

CARD = (120, 180)
"""A drawn card's width and height."""


def _card(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    card = np.full((CARD[1], CARD[0], 3), 235, np.uint8)
    for _ in range(6):
        x, y = rng.integers(10, CARD[0] - 20), rng.integers(10, CARD[1] - 20)
        cv2.circle(card, (int(x), int(y)), 9, tuple(int(c) for c in rng.integers(0, 200, 3)), -1)
    return card


def _scene(corners: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """Cards warped onto a noisy green table at the given corners (TL, TR, BR, BL)."""
    rng = np.random.default_rng(seed)
    scene = np.full((480, 640, 3), (70, 110, 60), np.uint8)
    scene = np.clip(scene + rng.normal(0, 8, scene.shape), 0, 255).astype(np.uint8)
    src = np.float32([[0, 0], [CARD[0] - 1, 0], [CARD[0] - 1, CARD[1] - 1], [0, CARD[1] - 1]])
    for i, dst in enumerate(corners):
        warp = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
        card = cv2.warpPerspective(_card(i), warp, (640, 480))
        mask = cv2.warpPerspective(np.ones(CARD[::-1], np.uint8), warp, (640, 480)) > 0
        scene[mask] = card[mask]
    return scene


TILTED = np.float32([[200, 100], [330, 130], [300, 320], [170, 290]])
SECOND = np.float32([[420, 60], [560, 70], [555, 280], [415, 270]])


def test_the_quad_finder_finds_each_card_within_a_few_pixels_of_its_corners() -> None:
    found = QuadFinder(DetectorConfig(kind="quad")).detect(_scene([TILTED, SECOND]))
    assert len(found) == 2
    for truth in (TILTED, SECOND):
        errors = [np.abs(d.quad - truth).max() for d in found if d.quad is not None]
        assert min(errors) <= 3.0  # pixels, on cards about 130 x 190 px
    assert all(d.score > 0.9 and d.name is None for d in found)


def test_the_quad_finder_finds_nothing_on_a_bare_table_and_keeps_max_det() -> None:
    assert QuadFinder(DetectorConfig(kind="quad")).detect(_scene([])) == []
    one = QuadFinder(DetectorConfig(kind="quad", max_det=1)).detect(_scene([TILTED, SECOND]))
    assert len(one) == 1


def test_corners_come_clockwise_from_the_top_left_whatever_their_order() -> None:
    for perm in itertools.permutations(range(4)):
        assert np.array_equal(order_corners(TILTED[list(perm)]), TILTED)


def test_degenerate_and_self_intersecting_quads_are_refused() -> None:
    assert is_usable(TILTED)
    crossed = TILTED[[0, 2, 1, 3]]  # a bow tie
    flat = np.float32([[0, 0], [50, 0], [100, 0], [50, 1]])  # three corners in a line
    tiny = np.float32([[0, 0], [3, 0], [3, 3], [0, 3]])
    assert not any(is_usable(q) for q in (crossed, flat, tiny))
    assert not is_usable(np.float32([[0, 0], [np.nan, 0], [1, 1], [0, 1]]))


def test_rectify_undoes_the_perspective_of_a_card() -> None:
    scene = _scene([TILTED])
    w, h = rectified_size(TILTED)
    assert abs(w / h - CARD[0] / CARD[1]) < 0.08
    flat = rectify(scene, TILTED, aspect=CARD[0] / CARD[1])
    card = cv2.resize(_card(0), (flat.shape[1], flat.shape[0]), interpolation=cv2.INTER_AREA)
    inner = (slice(6, -6), slice(6, -6))  # the warped edge blends into the table
    assert np.abs(flat[inner].astype(int) - card[inner].astype(int)).mean() < 12


def test_make_gives_each_kind_its_detector(tmp_path: Path) -> None:
    picture = np.zeros((30, 40, 3), np.uint8)
    whole = detectors.make(DetectorConfig(kind="none"), tmp_path)
    assert whole is not None and [d.box for d in whole.detect(picture)] == [(0, 0, 40, 30)]
    assert detectors.make(DetectorConfig(kind="locate"), tmp_path) is None
    assert isinstance(detectors.make(DetectorConfig(kind="quad"), tmp_path), QuadFinder)


def test_detector_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="weights"):
        DetectorConfig(kind="yolo")
    with pytest.raises(ValueError, match="image_size"):
        DetectorConfig(image_size=100)
    with pytest.raises(ValueError, match="max_det"):
        DetectorConfig(max_det=0)


# --- YOLO (Ultralytics, offline) -------------------------------------------------------


@pytest.fixture(scope="module")
def yolo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A detection and a classification model, built from Ultralytics' ``.yaml`` files
    (no weights downloaded) and saved as ``.pt`` files; and a file that is not a model."""
    from server.engine.vision.detectors.yolo import offline_ultralytics

    root = tmp_path_factory.mktemp("yolo")
    yolo = offline_ultralytics(root)
    files = {kind: root / f"{kind}.pt" for kind in ("detect", "classify", "obb")}
    yolo.YOLO("yolo11n.yaml").save(files["detect"])
    yolo.YOLO("yolo11n-cls.yaml").save(files["classify"])
    yolo.YOLO("yolo11n-obb.yaml").save(files["obb"])
    files["definition"] = root / "detect.yaml"
    files["definition"].write_text("nc: 1\n")
    files["broken"] = root / "broken.pt"
    files["broken"].write_bytes(files["detect"].read_bytes()[:5000])  # truncated
    return files


def _yolo(weights: Path, **kw: object) -> DetectorConfig:
    return DetectorConfig(kind="yolo", weights=weights, **kw)  # type: ignore[arg-type]


def test_a_yolo_model_loads_offline_and_keeps_max_det(
    yolo_files: dict[str, Path], tmp_path: Path
) -> None:
    import os

    detector = detectors.make(_yolo(yolo_files["detect"], confidence=0.0, max_det=3), tmp_path)
    assert detector is not None and detector.kind == "yolo"
    assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["YOLO_AUTOINSTALL"] == "false"
    picture = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    found = detector.detect(picture)
    assert 1 <= len(found) <= 3  # untrained: boxes of no meaning, but at most max_det
    for d in found:
        assert 0 <= d.box[0] < d.box[2] <= 320 and 0 <= d.box[1] < d.box[3] <= 240
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("missing", "no file"),
        ("broken", "is not a YOLO model"),
        ("classify", "classify model"),
        ("definition", "model definition with no trained weights"),
    ],
)
def test_a_bad_yolo_file_is_one_clear_error(
    yolo_files: dict[str, Path], tmp_path: Path, which: str, message: str
) -> None:
    weights = yolo_files.get(which, tmp_path / "missing.pt")
    with pytest.raises(ModelUnavailableError, match=message):
        detectors.make(_yolo(weights), tmp_path)


def test_ultralytics_is_kept_offline_with_its_settings_in_the_data_folder(
    yolo_files: dict[str, Path],
) -> None:
    import os

    from ultralytics.data import utils as data_utils
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["YOLO_AUTOINSTALL"] == "false"
    assert SETTINGS["sync"] is False
    config_dir = Path(os.environ["YOLO_CONFIG_DIR"])
    assert (
        USER_CONFIG_DIR.is_relative_to(config_dir) and (USER_CONFIG_DIR / "settings.json").is_file()
    )
    assert config_dir != Path.home() / ".config" / "Ultralytics"
    assert data_utils.check_font("Arial.ttf") is None  # no font fetched for plots


def test_a_device_that_is_not_there_fails_at_load(
    yolo_files: dict[str, Path], tmp_path: Path
) -> None:
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModelUnavailableError, match="no CUDA GPU"):
            detectors.make(_yolo(yolo_files["detect"], device="cuda:3"), tmp_path)
    # A device name that is none is refused as the project file is read.
    with pytest.raises(ValueError, match="detector.device must be auto, cpu, cuda, cuda:N or mps"):
        _yolo(yolo_files["detect"], device="gpu0")


def test_the_class_filter_and_max_det_hold_even_at_300(
    yolo_files: dict[str, Path], tmp_path: Path
) -> None:
    import torch

    from server.engine.vision.detectors.yolo import offline_ultralytics

    # An untrained model whose class "7" outscores every other everywhere.
    model = offline_ultralytics(tmp_path).YOLO(str(yolo_files["detect"]))
    with torch.no_grad():
        for branch in model.model.model[-1].cv3:
            branch[-1].bias[7] += 5.0
    sevens = tmp_path / "sevens.pt"
    model.save(sevens)
    picture = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)

    def names(**kw: object) -> list[str | None]:
        detector = detectors.make(_yolo(sevens, confidence=0.0, max_det=300, **kw), tmp_path)
        assert detector is not None
        return [d.name for d in detector.detect(picture)]

    every = names()
    assert len(every) == 300 and set(every) == {"7"}  # hundreds of boxes, capped at 300
    assert names(classes=("7", "3")) == every
    assert names(classes=("0",)) == []


def test_an_oriented_box_model_gives_boxes_and_corners(
    yolo_files: dict[str, Path], tmp_path: Path
) -> None:
    detector = detectors.make(_yolo(yolo_files["obb"], confidence=0.0, max_det=20), tmp_path)
    assert detector is not None
    found = detector.detect(np.random.default_rng(2).integers(0, 255, (240, 320, 3), np.uint8))
    assert found and any(d.quad is not None for d in found)
    for d in found:
        assert 0 <= d.box[0] < d.box[2] <= 320 and 0 <= d.box[1] < d.box[3] <= 240
        if d.quad is not None:
            assert is_usable(d.quad) and np.allclose(order_corners(d.quad), d.quad)


def test_a_keypoint_models_corners_are_checked_not_reordered_into_shape() -> None:
    from server.engine.vision.detectors.yolo import _quad

    square = np.float32([[10, 10], [110, 12], [108, 90], [12, 88]])
    assert np.allclose(_quad(square), square)  # clockwise from the top left, as given
    assert np.allclose(_quad(square[::-1]), square)  # the other way round: put clockwise
    crossed = square[[0, 2, 1, 3]]  # a bow tie: the corners fold over
    assert _quad(crossed) is None
    unsure = square.copy()
    unsure[2] = np.nan  # the model is not sure of one corner
    assert _quad(unsure) is None


def test_a_class_the_yolo_model_lacks_is_named(yolo_files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ProjectConfigError, match="no class 'card'"):
        detectors.make(_yolo(yolo_files["detect"], classes=("card",)), tmp_path)


def test_loading_ultralytics_leaves_pil_rejecting_a_corrupt_image_as_before(
    yolo_files: dict[str, Path],
) -> None:
    # Ultralytics patches PIL's Image.open to fetch a HEIF plugin on unknown files.
    from PIL import Image

    from server.engine.errors import ImageRejected
    from server.engine.vision.images import decode_image

    assert Image.open.__module__ == "PIL.Image"
    with pytest.raises(ImageRejected):
        decode_image(b"neither a JPEG nor a PNG", "upload")


def test_a_synthetic_scene_knows_where_each_thing_is_and_how_much_shows() -> None:
    from server.engine.vision.scenes import scene

    rng = np.random.default_rng(3)
    cards = [_card(i) for i in range(4)]
    table = np.full((480, 640, 3), (140, 100, 70), np.uint8)
    made = scene(cards, table, rng, strength=0.0)
    assert made.frame.shape == (480, 640, 3) and [t.index for t in made.things] == [0, 1, 2, 3]
    for thing in made.things:
        x0, y0, x1, y1 = thing.box
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480 and 0 < thing.visible <= 1
        # The box holds the visible part of the quad: its corners lie around it.
        qx0, qy0 = thing.quad.min(axis=0)
        qx1, qy1 = thing.quad.max(axis=0)
        assert qx0 - 2 <= x0 and qy0 - 2 <= y0 and x1 <= qx1 + 2 and y1 <= qy1 + 2
    assert made.things[-1].visible > 0.99  # nothing is placed over the last one
    again = scene(cards, table, np.random.default_rng(3), strength=0.0)
    assert np.array_equal(again.frame, made.frame)  # seeded


@pytest.mark.parametrize(
    ("size", "truth"),
    [
        ((640, 480), [[200, 120], [460, 140], [450, 330], [190, 310]]),  # a tilted card
        ((1601, 503), [[200, 180], [1400, 200], [1390, 430], [210, 410]]),  # a long sign
    ],
)
def test_rough_corners_are_placed_on_the_things_edges(
    size: tuple[int, int], truth: list[list[int]]
) -> None:
    from server.engine.vision.detectors.quad import refine

    w, h = size
    picture = np.full((h, w, 3), (40, 90, 60), np.uint8)
    corners = np.float32(truth)
    cv2.fillConvexPoly(picture, corners.astype(np.int32), (235, 230, 220))
    extent = corners.max(axis=0) - corners.min(axis=0)
    rough = corners + np.random.default_rng(0).uniform(-0.06, 0.06, (4, 2)) * extent
    placed = refine(picture, order_corners(rough))
    before = np.linalg.norm(order_corners(rough) - corners, axis=1).mean()
    after = np.linalg.norm(placed - corners, axis=1).mean()
    # Within a pixel or two of the search at REFINE_SIDE px, scaled back.
    diagonal = float(np.linalg.norm(extent))
    assert after < 0.01 * diagonal < before
    nothing_there = np.full_like(picture, 128)  # no edges: the rough corners stand
    assert np.allclose(refine(nothing_there, order_corners(rough)), order_corners(rough))
