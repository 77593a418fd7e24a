"""`identify train`: a projection head fitted, validated, adopted, indexed and verified."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from identify_tui.cli import main
from server.engine.catalog.vectors import open_or_none
from server.engine.decide.identifier import Identifier
from server.engine.live.service import Service
from server.engine.project.config import load_project
from server.engine.project.lock import ProjectLock
from server.engine.vision.embedders import project_embedder
from server.engine.vision.images import load_image
from server.engine.workflows import verify
from tests.conftest import DEMO_QUERIES, DEMO_REFS, write_project

FAST = "train:\n  views: 8\n"
SUPCON = "train:\n  method: supcon\n  views: 8\n  steps: 500\n"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's 19 references, indexed and trained once for the tests below."""
    root = tmp_path_factory.mktemp("train")
    refs = root / "refs"
    shutil.copytree(DEMO_REFS, refs)
    project = write_project(root, refs, FAST)
    assert run("index", "--project", str(project))[0] == 0
    code, out, err = run("train", "--project", str(project))
    assert code == 0, err
    (root / "train.out").write_text(out)
    return project


def test_train_adopts_a_head_that_beats_the_plain_model_on_held_out_views(trained: Path) -> None:
    out = (trained.parent.parent / "train.out").read_text()
    m = re.search(r"held-out top-1: plain ([\d.]+), with the head ([\d.]+)", out)
    assert m and float(m[2]) >= float(m[1]), out
    assert "trained on 19 references (19 classes): 133 views, 38 held out" in out
    assert re.search(r"adopted (head-[0-9a-f]{12}) .* re-indexed 19 references; recalibrated", out)
    # locate is on by default; the whitening head needs no --force for whole pictures.
    assert "--force" not in out


def test_the_project_names_the_head_and_everything_downstream_uses_it(trained: Path) -> None:
    text = trained.read_text()
    assert re.search(r"^projection:  # written by `identify train`", text, re.MULTILINE)
    assert "file: ../indexes/t/models/head-" in text  # relative: project and data move together
    proj = load_project(trained)
    assert proj.config.projection is not None and proj.config.projection.file.is_file()
    embedder = project_embedder(proj.config)
    head_id = proj.config.projection.id
    # train.dim is 256, but the 133 views of 19 references span only 132 directions.
    assert embedder.spec.projection == head_id and embedder.spec.dim == 132
    # The index was rebuilt in the head's space and says so; the calibration is for it.
    index = open_or_none(proj, embedder)
    assert index is not None and len(index) == 19
    assert proj.config.calibration is not None
    assert proj.config.calibration.model == f"{embedder.spec.model_id}+{head_id}"
    code, out, _ = run(
        "match",
        "--project",
        str(trained),
        "--json",
        "--no-record",
        str(DEMO_QUERIES / "known-brazil.jpg"),
    )
    assert code == 0
    assert json.loads(out)["objects"][0]["label"] == "Brazil"


def test_verify_asks_unknowns_through_fold_heads_blind_to_them(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run("verify", "--project", str(trained), "--json", "--no-write")
    assert code == 0, err
    report = json.loads(out)
    assert any("4 fold heads" in n for n in report["notes"]), report["notes"]
    assert report["model"].endswith(load_project(trained).config.projection.id)
    # Whole pictures are calibrated too: their unknown pass locates through the fold head.
    assert report["pictures"] is not None and report["pictures"]["queries"] == 2 * 19
    # Asked through the head that saw every class, a hidden class looks less like any
    # other: the unknown pass is flattered, which is what the fold heads undo.
    monkeypatch.setattr(verify.BlindHeads, "build", lambda *a, **k: None)
    code, out, err = run("verify", "--project", str(trained), "--json", "--no-write")
    assert code == 0, err
    flattered = json.loads(out)
    assert flattered["unknown_score_median"] < report["unknown_score_median"]
    assert flattered["unknown_reject_rate"] >= report["unknown_reject_rate"]
    # Without fold heads there is no honest unknown pass for pictures: none is run.
    assert flattered["pictures"] is None
    assert any("their unknown pass needs fold heads" in n for n in flattered["notes"])


def test_a_fold_space_locates_and_embeds_through_its_fold_head(trained: Path) -> None:
    proj = load_project(trained)
    embedder = project_embedder(proj.config)
    ident = Identifier.open(proj, embedder)
    try:
        refs = ident.store.active_references()
        blind = verify.BlindHeads.build(proj, embedder, ident, refs, [])
        assert blind is not None and len(blind.spaces) == len(embedder.head.folds) == 4
        fold = blind.fold_for("Brazil")
        assert fold is not None
        fold_embedder, search = blind.spaces[fold]
        frame = load_image(DEMO_QUERIES / "known-brazil.jpg")
        x = embedder.preprocess(frame)[None]
        np.testing.assert_allclose(
            fold_embedder.embed_batch(x),
            embedder.head.project(embedder.base.embed_batch(x), embedder.head.folds[fold][0]),
            atol=1e-6,
        )
        regions = ident.regions(frame, exclude="Brazil", space=blind.spaces[fold])
        assert len(regions) > 1
        np.testing.assert_allclose(
            regions[0].evidence.vector, fold_embedder.embed_batch(x)[0], atol=1e-5
        )
        keys, _ = ident._nearest(np.stack([r.evidence.vector for r in regions]), "Brazil", search)
        assert all(ident.labels[int(k)] != "Brazil" for k in keys)
    finally:
        ident.close()


def test_a_damaged_head_file_is_one_clear_error_and_changes_nothing(
    trained: Path, tmp_path: Path
) -> None:
    proj = load_project(trained)
    head = proj.config.projection.file
    saved = head.read_bytes()
    project_text = trained.read_text()
    try:
        head.write_bytes(saved[:64])
        code, _, err = run(
            "match",
            "--project",
            str(trained),
            "--no-record",
            str(DEMO_QUERIES / "known-brazil.jpg"),
        )
        assert code == 2
        assert "cannot be read" in err and "identify train" in err
        assert "Traceback" not in err
        assert trained.read_text() == project_text
    finally:
        head.write_bytes(saved)


def test_train_needs_an_index_and_two_classes(tmp_path: Path, small_refs: Path) -> None:
    project = write_project(tmp_path, small_refs, FAST)
    code, _, err = run("train", "--project", str(project))
    assert code == 2 and "run `identify index" in err
    for extra in small_refs.glob("*.png"):
        if extra.stem != "Brazil":
            extra.unlink()
    assert run("index", "--project", str(project))[0] == 0
    code, _, err = run("train", "--project", str(project))
    assert code == 2 and "at least two classes" in err


def test_without_the_projection_block_the_plain_model_comes_back(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs, FAST)
    assert run("index", "--project", str(project))[0] == 0
    code, out, err = run("train", "--project", str(project), "--force")
    assert code == 0, err
    assert "adopted" in out, out
    assert "too few classes" in out  # 6 classes: no fold heads, and verify says so
    text = project.read_text()
    project.write_text(text[: text.index("projection:")])
    code, out, _ = run("index", "--project", str(project))
    assert code == 0 and "(0 embedded, 6 unchanged" in out  # plain vectors were kept
    assert "the vector index was rebuilt from the database" in out
    proj = load_project(project)
    assert project_embedder(proj.config).spec.projection == "none"


def test_a_reference_added_while_serving_goes_through_the_head(
    trained: Path, tmp_path: Path
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(trained.parent.parent, root)  # projects/, indexes/, refs/ together
    proj = load_project(root / "projects" / "t.yaml")
    service = Service.open(proj, project_embedder(proj.config))
    try:
        assert service.health()["projection"] == proj.config.projection.id
        orange = (DEMO_QUERIES / "unknown-orange.jpg").read_bytes()
        service.commit_reference(service.prepare_reference(orange, "Orange"))
        (found,) = service.identify_prepared(service.prepare(orange), source="test", record=False)
        after = found.decision
        assert after.label == "Orange" and after.candidates[0].cosine > 0.8
    finally:
        service.close()
    # verify still runs: the new class was seen by no head, so it is asked plainly.
    code, out, err = run(
        "verify", "--project", str(root / "projects" / "t.yaml"), "--json", "--no-write"
    )
    assert code == 0, err
    assert json.loads(out)["classes"] == 20


def test_a_head_worse_than_the_plain_model_is_not_adopted(tmp_path: Path, small_refs: Path) -> None:
    # Two output dimensions cannot keep six classes apart: the plain model wins.
    project = write_project(tmp_path, small_refs, "train:\n  views: 4\n  steps: 5\n  dim: 2\n")
    assert run("index", "--project", str(project))[0] == 0
    code, out, err = run("train", "--project", str(project))
    assert code == 0, err
    m = re.search(r"plain ([\d.]+), with the head ([\d.]+)", out)
    assert m and float(m[2]) < float(m[1])
    assert "kept the plain model" in out
    assert "projection:" not in project.read_text()
    assert not list((tmp_path / "indexes").rglob("head-*.pt"))


def test_a_project_that_locates_in_whole_pictures_adopts_a_supcon_head_only_with_force(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs, SUPCON)
    assert run("index", "--project", str(project))[0] == 0
    code, out, err = run("train", "--project", str(project))
    assert code == 0, err
    m = re.search(r"plain ([\d.]+), with the head ([\d.]+)", out)
    assert m and float(m[2]) >= float(m[1])  # it passed the held-out check...
    assert "kept the plain model: this project locates things in whole pictures" in out
    assert "projection:" not in project.read_text()  # ...and still did not go live
    project.write_text(project.read_text() + "locate:\n  enabled: false\n")
    code, out, err = run("train", "--project", str(project))
    assert code == 0, err
    assert "adopted head-" in out and "projection:" in project.read_text()
    project.write_text(project.read_text().replace("locate:\n  enabled: false\n", ""))
    code, out, err = run("train", "--project", str(project), "--force")
    assert code == 0, err
    assert "adopted with --force: the head is not validated on whole pictures" in out


def test_train_refuses_while_a_server_holds_the_project(tmp_path: Path, small_refs: Path) -> None:
    project = write_project(tmp_path, small_refs, FAST)
    assert run("index", "--project", str(project))[0] == 0
    before = project.read_text()
    with ProjectLock(load_project(project).data_dir, "identify serve on http://127.0.0.1:8765"):
        code, _, err = run("train", "--project", str(project), "--force")
    assert code == 2 and "identify serve on http://127.0.0.1:8765" in err
    assert project.read_text() == before


def test_references_added_while_serving_join_the_heads_index_and_a_retrain_keeps_the_head(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs, SUPCON + "locate:\n  enabled: false\n")
    assert run("index", "--project", str(project))[0] == 0
    proj = load_project(project)
    orange = (DEMO_QUERIES / "unknown-orange.jpg").read_bytes()
    service = Service.open(proj, project_embedder(proj.config))
    try:
        service.commit_reference(service.prepare_reference(orange, "Orange"))
    finally:
        service.close()
    code, out, err = run("train", "--project", str(project))
    assert code == 0, err
    assert "trained on 7 references (7 classes)" in out
    assert "re-indexed 7 references" in out, out  # the live one too, in the head's space
    code, out, _ = run(
        "match",
        "--project",
        str(project),
        "--json",
        "--no-record",
        str(DEMO_QUERIES / "unknown-orange.jpg"),
    )
    assert json.loads(out)["objects"][0]["label"] == "Orange"
    head_id = load_project(project).config.projection.id
    # Train again with locate on and no --force: the head in use stays, and says so.
    project.write_text(project.read_text().replace("locate:\n  enabled: false\n", ""))
    code, out, err = run("train", "--project", str(project))
    assert code == 0, err
    assert f"kept {head_id}: this project locates things" in out
    assert load_project(project).config.projection.id == head_id
