"""``identify detector finetune`` and ``identify evaluate``: a detector trained further on
reviewed boxes (tiny here: one epoch at 64 px), registered as a version whose parent is
its base and not live; two versions compared on the held-out reviewed pictures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from identify_tui.cli import main
from server.engine.catalog.store import Store
from server.engine.project.config import DEFAULT_TAXONOMY, load_project
from server.engine.workflows.index import build_index
from tests.conftest import write_project
from tests.integration.test_detected_objects import _scene as table_scene


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # type: ignore[no-untyped-def]
    """Six tables of two flags, every answer queued and each flag reviewed: Brazil
    corrected (indexed), Japan named (not indexed at first: its first naming makes it a
    class)."""
    from server.engine.live.service import Service
    from tests.conftest import DEMO_REFS

    root = tmp_path_factory.mktemp("finetune")
    refs = root / "refs"
    refs.mkdir()
    for name in ("Brazil", "apple_red", "banana"):
        (refs / f"{name}.png").write_bytes((DEMO_REFS / f"{name}.png").read_bytes())
    file = write_project(root, refs, "detector:\n  kind: quad\n")
    project = load_project(file)
    build_index(project, embedder)
    service = Service.open(project, embedder)
    try:
        service.set_threshold("taxonomy", DEFAULT_TAXONOMY, 1.99, 0.0)
        for seed in range(6):
            objects = service.identify_prepared(
                service.prepare(table_scene(seed)), source=f"t{seed}"
            )
            assert len(objects) == 2
            left, right = sorted(objects, key=lambda o: o.bbox[0])
            for obj, label in ((left, "Brazil"), (right, "Japan")):
                item = service.review_item(obj.review_id)
                kind = "corrected" if label == "Brazil" or seed else "confirmed"
                plan = service.plan_annotation(item.id, kind, label)
                service.commit_annotation(plan, service.prepare_annotation(plan))
    finally:
        service.close()
    return file


def test_a_finetuned_detector_is_a_new_version_not_live_and_is_compared_with_the_live_one(
    reviewed: Path,
) -> None:
    before = reviewed.read_text()
    code, out = run(
        "detector", "finetune", "--project", str(reviewed), "--epochs", "1", "--image-size", "64"
    )
    assert code == 0, out
    m = re.search(r"version (\d+) \((detector-ft-[0-9a-f]{8})\)", out)
    assert m, out
    version, name = int(m[1]), m[2]
    assert re.search(r"held-out reviewed picture\(s\): mAP50 [\d.]+ \(base -\)", out)
    assert reviewed.read_text() == before  # not live
    project = load_project(reviewed)
    weights = project.data_dir / "models" / f"{name}.pt"
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["class_agnostic"] and card["from"] == "yolo11n-pose.yaml"
    assert card["pictures"]["train"] + card["pictures"]["val"] == 6 and card["pictures"]["val"] >= 1
    assert card["objects"]["train"] + card["objects"]["val"] == 12
    # The training labels: one class, the corners written as absent.
    labels = next(
        (project.data_dir / "detector" / "finetune" / "data" / "labels" / "train").glob("*.txt")
    )
    fields = labels.read_text().splitlines()[0].split()
    assert len(fields) == 17 and fields[0] == "0" and fields[5:] == ["0"] * 12

    result = CliRunner().invoke(
        main, ["evaluate", "--project", str(reviewed), "live", str(version), "--json"]
    )
    assert result.exit_code == 0, result.output
    compared = json.loads(result.stdout)
    a, b = compared["a"], compared["b"]
    assert compared["data"] == "val" and a["pictures"] == b["pictures"] == card["pictures"]["val"]
    assert a["objects"] == 2 * a["pictures"]
    # The edge finder finds both flags on these tables; a one-epoch model finds less.
    assert a["recall"] >= 0.5 and b["recall"] <= a["recall"]
    assert set(a["per_class_recall"]) == {"Brazil", "Japan"}
    assert compared["difference"]["recall"] == pytest.approx(b["recall"] - a["recall"], abs=1e-3)
    # No answer passes the thresholds (1.99) and both flags are indexed (Japan since its
    # first naming): every object found was answered unknown, which is wrong.
    assert a["open_set_accuracy"] == 0.0
    assert a["false_positives_per_picture"] == 0.0  # the edge finder finds the two flags only
    # What was evaluated was never trained on: no picture is on both sides.
    export = project.data_dir / "detector" / "finetune" / "export" / "images"
    sides = {s: {f.read_bytes() for f in (export / s).iterdir()} for s in ("train", "val")}
    assert len(sides["val"]) == a["pictures"] and not sides["train"] & sides["val"]
    assert card["reviewed_until"] is not None
    code, table = run("evaluate", "--project", str(reviewed), "live", str(version))
    assert code == 0 and "open-set accuracy" in table and "recall Brazil" in table

    # Made live, then fine-tuned again from it: the new version's parent is it.
    assert run("versions", "use", str(version), "--project", str(reviewed))[0] == 0
    code, out = run(
        "detector", "finetune", "--project", str(reviewed), "--epochs", "1", "--image-size", "64"
    )
    assert code == 0, out
    assert re.search(r"on \d+ held-out reviewed picture\(s\): mAP50 [\d.]+ \(base [\d.]+\)", out)
    second = int(re.search(r"version (\d+)", out)[1])  # type: ignore[index]
    store = Store(project.db_path)
    try:
        assert store.version(second).parent_id == version
    finally:
        store.close()

    # The round trip ends with a roll back: the edge finder is live again.
    code, out = run("versions", "rollback", "--kind", "detector", "--project", str(reviewed))
    assert code == 0, out
    assert "kind: quad" in reviewed.read_text() and name not in reviewed.read_text()

    # A version whose classes the model lacks is refused whole (as one registered live
    # with a filter would be): the project file is left as it was.
    store = Store(project.db_path)
    try:
        training = json.dumps(
            {**store.version(version).training, "class_agnostic": False, "classes": ["Brazil"]}
        )
        store.db.execute("update model_versions set training = ? where id = ?", [training, version])
        store.db.conn.commit()
    finally:
        store.close()
    before = reviewed.read_text()
    code, out = run("versions", "use", str(version), "--project", str(reviewed))
    assert code != 0 and "has no class 'Brazil'" in out
    assert reviewed.read_text() == before


def test_an_interrupted_finetune_leaves_nothing_and_the_live_version_as_it_was(
    reviewed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.engine.workflows import finetune

    project = load_project(reviewed)
    before = reviewed.read_text()
    store = Store(project.db_path)
    try:
        versions = len(store.versions())
    finally:
        store.close()
    models = set((project.data_dir / "models").glob("*"))

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune, "fit_yolo", interrupted)
    with pytest.raises(KeyboardInterrupt):
        finetune.finetune_detector(str(reviewed), epochs=1, image_size=64)
    assert reviewed.read_text() == before
    store = Store(project.db_path)
    try:
        assert len(store.versions()) == versions
    finally:
        store.close()
    assert set((project.data_dir / "models").glob("*")) == models
    # The project is free again: the writer lock went with the interruption.
    code, out = run("evaluate", "--project", str(reviewed), "live", "99")
    assert code != 0 and "99" in out
    code, out = run("detector", "finetune", "--project", str(reviewed), "--from", "99")
    assert code != 0 and "99" in out


def test_a_judgement_leaves_out_the_references_its_crops_made(
    reviewed: Path,
) -> None:
    """Unified: every naming made a reference, Japan's the only ones it has. A copy
    without them does not know Japan; the project still does; the copy goes after."""
    from server.engine.decide.identifier import Identifier
    from server.engine.vision.embedders import project_embedder
    from server.engine.workflows.judging_copy import judging_copy

    project = load_project(reviewed)
    store = Store(project.db_path)
    try:
        made = {r.reference_id for r in store.training_rows(["confirmed", "corrected"])}
    finally:
        store.close()
    made.discard(None)
    stale = project.data_dir / ".judging-999999999-x"  # a killed process's
    stale.mkdir()
    embedder = project_embedder(project.config)
    with judging_copy(project, project.config, made) as copy:  # type: ignore[arg-type]
        assert not stale.exists()
        ident = Identifier.open(copy, embedder)
        try:
            assert "Japan" not in ident.labels.values()
            assert {"Brazil", "Apple Red", "Banana"} <= set(ident.labels.values())
        finally:
            ident.close()
    ident = Identifier.open(project, embedder)
    try:
        assert "Japan" in ident.labels.values()
    finally:
        ident.close()
    assert not list(project.data_dir.glob(".judging-*"))


def test_nothing_reviewed_or_a_wrong_version_is_one_clear_error(
    tmp_path: Path,
    small_refs: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    file = write_project(tmp_path, small_refs, "detector:\n  kind: quad\n")
    build_index(load_project(file), embedder)
    code, out = run("detector", "finetune", "--project", str(file), "--epochs", "1")
    assert code != 0 and "review more first" in out
    code, out = run("evaluate", "--project", str(file), "live", "live")
    assert code != 0 and "no reviewed picture" in out
    code, out = run("evaluate", "--project", str(file), "live", "nope")
    assert code != 0 and "registry id or 'live'" in out
