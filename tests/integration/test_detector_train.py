"""``identify detector train``: synthetic scenes of the references, a YOLO detector
trained on them offline (tiny here: a dozen scenes, one epoch), its weights in the models
folder and the project file pointing at them, other detector settings kept."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from identify_tui.cli import main
from server.engine.project.config import load_project
from server.engine.vision import detectors
from tests.conftest import DEMO_REFS, write_project


def _flags(tmp_path: Path) -> Path:
    refs = tmp_path / "flags"
    refs.mkdir()
    for name in ("Brazil", "Japan", "Canada", "India", "Sweden"):
        shutil.copy(DEMO_REFS / f"{name}.png", refs / f"{name}.png")
    return refs


def test_a_detector_is_trained_on_scenes_and_becomes_the_projects(tmp_path: Path) -> None:
    project = write_project(tmp_path, _flags(tmp_path), "detector:\n  max_det: 7\n")
    args = ["detector", "train", "--project", str(project), "--scenes", "12", "--epochs", "1"]
    result = CliRunner().invoke(main, [*args, "--image-size", "64"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "on 12 scenes, 1 epochs at 64 px: mAP50 " in result.stdout
    loaded = load_project(project)
    cfg = loaded.config.detector
    assert (cfg.kind, cfg.image_size, cfg.max_det) == ("yolo", 64, 7)  # max_det kept
    assert cfg.weights is not None and cfg.weights.parent == loaded.data_dir / "models"
    scenes = loaded.data_dir / "detector" / "scenes"
    assert len(list((scenes / "images" / "train").glob("*.jpg"))) == 10
    assert len(list((scenes / "labels" / "val").glob("*.txt"))) == 2
    label = next((scenes / "labels" / "train").glob("*.txt")).read_text().split()
    assert label[0] == "0" and all(0 <= float(v) <= 1 for v in label[1:5])
    detector = detectors.make(cfg, loaded.data_dir)
    assert detector is not None and detector.kind == "yolo"


def test_too_few_scenes_or_a_bad_size_is_refused(tmp_path: Path) -> None:
    project = write_project(tmp_path, _flags(tmp_path))
    for extra in (["--scenes", "5"], ["--image-size", "100"]):
        args = ["detector", "train", "--project", str(project), *extra]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and (
            "--scenes" in result.stderr or "--image-size" in result.stderr
        )
    assert "detector" not in project.read_text()
