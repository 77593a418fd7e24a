"""``identify detector train``: synthetic scenes of the references, a YOLO keypoint
model of their corners trained on them offline (tiny here: a dozen scenes, one epoch),
its weights in the models folder and the project file pointing at them, other detector
settings kept."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from identify_tui.cli import main
from server.engine.project.config import load_project
from server.engine.vision import detectors
from server.engine.vision.rectify import order_corners
from tests.conftest import DEMO_REFS, write_project


def _flags(tmp_path: Path) -> Path:
    refs = tmp_path / "flags"
    refs.mkdir()
    for name in ("Brazil", "Japan", "Canada", "India", "Sweden"):
        shutil.copy(DEMO_REFS / f"{name}.png", refs / f"{name}.png")
    return refs


def test_a_detector_is_trained_on_scenes_and_becomes_the_projects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried: list[object] = []

    def no_network(*args: object, **kwargs: object) -> None:
        tried.append(args)
        raise OSError("the network is out of reach in this test")

    # Nothing may even try the network (a name looked up, a connection opened): no
    # weights, fonts or checks fetched.
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    project = write_project(tmp_path, _flags(tmp_path), "detector:\n  max_det: 7\n")
    args = ["detector", "train", "--project", str(project), "--scenes", "12", "--epochs", "1"]
    result = CliRunner().invoke(main, [*args, "--image-size", "64"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "on 12 scenes, 1 epochs at 64 px: mAP50 " in result.stdout
    loaded = load_project(project)
    cfg = loaded.config.detector
    assert (cfg.kind, cfg.image_size, cfg.max_det) == ("yolo", 64, 7)  # max_det kept
    assert cfg.weights is not None and cfg.weights.parent == loaded.data_dir / "models"
    card = json.loads(cfg.weights.with_suffix(".json").read_text())
    assert (card["scenes"], card["held_out"], card["epochs"], card["references"]) == (12, 2, 1, 5)
    assert card["backgrounds"]["procedural"] >= 8 and card["backgrounds"]["photos"] >= 1
    assert (
        0 <= card["held_out_map50"]["boxes"] <= 1
        and f"{card['held_out_map50']['boxes']:.3f}" in result.stdout
    )
    scenes = loaded.data_dir / "detector" / "scenes"
    assert len(list((scenes / "images" / "train").glob("*.jpg"))) == 10
    assert len(list((scenes / "labels" / "val").glob("*.txt"))) == 2
    assert "kpt_shape: [4, 3]" in (scenes / "data.yaml").read_text()
    for line in next((scenes / "labels" / "train").glob("*.txt")).read_text().splitlines():
        fields = [float(v) for v in line.split()]
        # Class, box, then four corners (x, y, visibility) clockwise from the top left.
        assert len(fields) == 17 and fields[0] == 0 and all(0 <= v <= 1 for v in fields[1:5])
        corners = np.array(fields[5:]).reshape(4, 3)
        assert set(corners[:, 2]) <= {0, 2} and (corners[:, :2] >= 0).all()
        shown = corners[corners[:, 2] == 2, :2]
        assert (shown <= 1).all()
        if len(shown) == 4:  # clockwise from the top left, as the picture shows them
            assert np.allclose(order_corners(shown), shown, atol=1e-5)
    detector = detectors.make(cfg, loaded.data_dir)
    assert detector is not None and detector.kind == "yolo"
    assert detector.model.task == "pose" and list(detector.model.model.kpt_shape) == [4, 3]
    assert tried == []
    # A version in the registry, live, with the detector it replaced kept to roll back to.
    listed = CliRunner().invoke(
        main, ["versions", "list", "--project", str(project), "--kind", "detector"]
    )
    live = next(ln for ln in listed.stdout.splitlines() if ln.startswith("*"))
    assert cfg.weights.stem in live and "map50_synthetic" in live
    assert "builtin:locate" in listed.stdout


def test_too_few_scenes_or_a_bad_size_is_refused(tmp_path: Path) -> None:
    project = write_project(tmp_path, _flags(tmp_path))
    for extra in (["--scenes", "5"], ["--image-size", "100"]):
        args = ["detector", "train", "--project", str(project), *extra]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and (
            "--scenes" in result.stderr or "--image-size" in result.stderr
        )
    assert "detector" not in project.read_text()
