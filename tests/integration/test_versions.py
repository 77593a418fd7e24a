"""``identify versions``: the model registry. Versions known by content, with parents;
the live one read from the project file; a switch writes it (a head re-indexes and
recalibrates), a rollback goes back; a changed, missing or non-model file is refused
with the project file untouched."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from identify_tui.cli import main
from server.engine.catalog.store import Store
from server.engine.project.config import load_project
from server.engine.training.registry import Identity, file_hash, register
from server.engine.vision.embedders import project_embedder
from server.engine.workflows.index import build_index
from tests.conftest import write_project


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def _yolo_file(data_dir: Path, path: Path) -> Path:
    """An (untrained) Ultralytics keypoint model saved as a weights file."""
    from server.engine.vision.detectors.yolo import offline_ultralytics

    yolo = offline_ultralytics(data_dir)
    yolo.YOLO("yolo11n-pose.yaml").save(str(path))
    return path


def _register(project_file: Path, path: Path, name: str, parent: int | None = None) -> int:
    project = load_project(project_file)
    store = Store(project.db_path)
    try:
        identity = Identity("detector", name, path, file_hash(path))
        return register(store, project, identity, parent, {"image_size": 64}, {"map50": 0.5}).id
    finally:
        store.close()


@pytest.fixture()
def project_file(tmp_path: Path, small_refs: Path, embedder) -> Path:  # type: ignore[no-untyped-def]
    file = write_project(tmp_path, small_refs, "detector:\n  kind: quad\n  max_det: 7\n")
    build_index(load_project(file), embedder)
    return file


def test_detector_versions_switch_and_roll_back_through_the_project_file(
    project_file: Path, tmp_path: Path
) -> None:
    code, out = run("versions", "list", "--project", str(project_file))
    assert code == 0, out
    # Nothing registered yet: what the project file makes live, one per kind.
    assert "3 version(s)" in out and out.count("(live, not registered yet)") == 3
    assert "builtin:quad" in out and "plain" in out and "efficientnet-lite0/default" in out
    project = load_project(project_file)
    weights = _yolo_file(project.data_dir, tmp_path / "mine.pt")
    a = _register(project_file, weights, "mine")

    code, out = run("versions", "use", str(a), "--project", str(project_file))
    assert code == 0, out
    assert re.search(rf"detector \d+ \(builtin:quad\) -> {a} \(mine\)", out)
    cfg = load_project(project_file).config.detector
    assert (cfg.kind, cfg.weights, cfg.image_size, cfg.max_det) == ("yolo", weights, 64, 7)
    code, out = run("versions", "list", "--project", str(project_file), "--kind", "detector")
    lines = [ln for ln in out.splitlines() if "detector" in ln and ln[:1] in "* "]
    assert [ln[0] for ln in lines] == [" ", "*"] or [ln[0] for ln in lines] == ["*", " "]
    live = next(ln for ln in lines if ln.startswith("*"))
    assert " mine " in live and "map50 0.500" in live

    code, out = run("versions", "use", str(a), "--project", str(project_file))
    assert code != 0 and "is live already" in out

    code, out = run("versions", "rollback", "--kind", "detector", "--project", str(project_file))
    assert code == 0, out
    cfg = load_project(project_file).config.detector
    assert (cfg.kind, cfg.weights, cfg.max_det) == ("quad", None, 7)
    code, out = run("versions", "show", str(a), "--project", str(project_file))
    shown = json.loads(out)
    assert shown["live"] is False and shown["content_hash"] == file_hash(weights)
    assert [s["reason"] for s in shown["switches"]] == ["rollback", "use", "found live"]


def test_a_changed_missing_or_non_model_file_is_refused_and_nothing_changes(
    project_file: Path, tmp_path: Path
) -> None:
    project = load_project(project_file)
    changed = _yolo_file(project.data_dir, tmp_path / "changed.pt")
    b = _register(project_file, changed, "changed")
    changed.write_bytes(changed.read_bytes()[:1000])
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_bytes(b"not a model at all")
    c = _register(project_file, not_a_model, "notes")
    gone = _yolo_file(project.data_dir, tmp_path / "gone.pt")
    d = _register(project_file, gone, "gone")
    gone.unlink()
    before = project_file.read_text()
    for version, message in (
        (b, "has changed since"),
        (c, "notes.pt is not a YOLO model"),
        (d, "is gone"),
        (99, "no model version 99"),
    ):
        code, out = run("versions", "use", str(version), "--project", str(project_file))
        assert code != 0 and message in out, out
        assert project_file.read_text() == before
    code, out = run("versions", "rollback", "--kind", "head", "--project", str(project_file))
    assert code != 0 and "nothing to roll back to" in out
    code, out = run("versions", "list", "--kind", "nonsense", "--project", str(project_file))
    assert code != 0


def test_a_trained_head_is_a_version_of_its_embedder_and_rolls_back_to_the_plain_model(
    project_file: Path,
) -> None:
    code, out = run("train", "--project", str(project_file), "--force")
    assert code == 0 and "adopted" in out, out
    head_id = load_project(project_file).config.projection.id  # type: ignore[union-attr]
    code, out = run("versions", "list", "--project", str(project_file), "--kind", "head")
    live = next(ln for ln in out.splitlines() if ln.startswith("*"))
    assert head_id in live and "validation_top1" in live and "from " in live
    head_version = live.split()[1]

    code, out = run("versions", "rollback", "--kind", "head", "--project", str(project_file))
    assert code == 0, out
    assert "(plain)" in out and "re-indexed in the new space: 0 embedded, 6 unchanged" in out
    assert "recalibrated: threshold" in out
    proj = load_project(project_file)
    assert proj.config.projection is None and "projection:" not in project_file.read_text()
    assert project_embedder(proj.config).spec.projection == "none"

    code, out = run("versions", "rollback", "--kind", "head", "--project", str(project_file))
    assert code != 0 and "nothing to roll back to" in out  # the plain model came first
    code, out = run("versions", "use", head_version, "--project", str(project_file))
    assert code == 0 and "re-indexed in the new space: 0 embedded, 6 unchanged" in out, out
    proj = load_project(project_file)
    assert proj.config.projection is not None and proj.config.projection.id == head_id
    assert project_embedder(proj.config).spec.projection == head_id


def test_rollback_walks_back_and_restores_the_settings_and_a_lost_live_file_is_left(
    project_file: Path, tmp_path: Path
) -> None:
    project = load_project(project_file)
    first = _register(project_file, _yolo_file(project.data_dir, tmp_path / "b.pt"), "b")
    second = _register(project_file, _yolo_file(project.data_dir, tmp_path / "c.pt"), "c")
    for version in (first, second):
        assert run("versions", "use", str(version), "--project", str(project_file))[0] == 0
    # C -> B -> quad (A): back along the switches, not to and fro.
    code, out = run("versions", "rollback", "--kind", "detector", "--project", str(project_file))
    assert code == 0 and f"-> {first} (b)" in out, out
    code, out = run("versions", "rollback", "--kind", "detector", "--project", str(project_file))
    assert code == 0 and "(builtin:quad)" in out, out
    cfg = load_project(project_file).config.detector
    assert (cfg.kind, cfg.weights, cfg.image_size, cfg.max_det) == ("quad", None, 640, 7)
    code, out = run("versions", "rollback", "--kind", "detector", "--project", str(project_file))
    assert code != 0 and "nothing to roll back to" in out
    # The live weights deleted by hand: listing says so; switching away still works.
    assert run("versions", "use", str(second), "--project", str(project_file))[0] == 0
    (tmp_path / "c.pt").unlink()
    code, out = run("versions", "list", "--project", str(project_file))
    assert code != 0 and "c.pt" in out
    code, out = run("versions", "use", str(first), "--project", str(project_file))
    assert code == 0 and "detector ? -> " in out, out
    assert load_project(project_file).config.detector.weights == tmp_path / "b.pt"
