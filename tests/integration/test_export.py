"""``identify export``: reviewed boxes as YOLO and COCO that real clients take unchanged
(Ultralytics trains on the YOLO export, pycocotools loads and evaluates the COCO one);
split by picture; filters; an earlier export kept until the new one is whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from identify_tui.cli import main
from server.engine.errors import IdentifyError
from server.engine.project.config import DEFAULT_TAXONOMY, Project, load_project
from server.engine.workflows.export import export_dataset
from server.engine.workflows.index import build_index
from tests.conftest import write_project
from tests.integration.test_detected_objects import _scene as table_scene

ODD = 'AC/DC: "Live" #1 [ü], {x}'
"""A class name with what breaks YAML and file names unquoted."""
DRAWN = [20, 20, 70, 60]
"""The box a reviewer draws round a thing the detector missed."""


def _annotate(
    service: Any, item_id: int, kind: str, label: str | None = None, box: Any = None
) -> None:
    plan = service.plan_annotation(item_id, kind, label, box)
    service.commit_annotation(plan, service.prepare_annotation(plan))


@pytest.fixture()
def reviewed(tmp_path: Path, small_refs: Path, embedder) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Two tables of two flags each, every answer queued (no answer passes): on the
    first, Brazil corrected (it is indexed), Japan named (it is not), and a thing
    nobody found drawn; on the second, both "things" marked as nothing there."""
    from server.engine.live.service import Service

    (small_refs / "Japan.png").unlink()
    project = load_project(write_project(tmp_path, small_refs, "detector:\n  kind: quad\n"))
    build_index(project, embedder)
    service = Service.open(project, embedder)
    try:
        service.set_threshold("taxonomy", DEFAULT_TAXONOMY, 1.99, 0.0)
        first = service.identify_prepared(service.prepare(table_scene(0)), source="table-1")
        second = service.identify_prepared(service.prepare(table_scene(7)), source="table-2")
        assert len(first) == 2 and len(second) == 2
        left, right = sorted(first, key=lambda o: o.bbox[0])  # Brazil left, Japan right
        boxes = {"Brazil": list(left.bbox), "Japan": list(right.bbox)}
        _annotate(service, left.review_id, "corrected", "Brazil")
        _annotate(service, right.review_id, "confirmed", "Japan")
        _annotate(service, left.review_id, "missed", ODD, DRAWN)
        for obj in second:
            _annotate(service, obj.review_id, "false_positive")
        stored = service.review_item(left.review_id)
    finally:
        service.close()
    return {"project": project, "boxes": boxes, "stored_box": stored.box}


def _read_labels(root: Path) -> dict[str, list[list[float]]]:
    return {
        f"{p.parent.name}/{p.name}": [
            [float(v) for v in line.split()] for line in p.read_text().splitlines()
        ]
        for p in sorted((root / "labels").rglob("*.txt"))
    }


def test_a_yolo_export_holds_each_reviewed_box_and_ultralytics_trains_on_it(
    reviewed: dict[str, Any], tmp_path: Path
) -> None:
    project: Project = reviewed["project"]
    out = tmp_path / "exports" / "yolo"
    _, done = export_dataset(str(project.file), out, "yolo")
    assert done.pictures == {"train": 1, "val": 1}
    assert sum(done.objects.values()) == 3 and sum(done.backgrounds.values()) == 1
    # Classes in the order first annotated: the correction, the new class, the drawn one.
    assert done.classes == ["Brazil", "Japan", ODD]
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "Brazil", 1: "Japan", 2: ODD}
    assert Path(data["path"]) == out.resolve()
    labels = _read_labels(out)
    [objects] = [lines for lines in labels.values() if lines]
    [background] = [name for name, lines in labels.items() if not lines]
    # The table and the background went to different sides (two pictures: one each).
    assert {k.split("/")[0] for k in labels} == {"train", "val"}
    assert background.split("/")[0] != next(k for k, v in labels.items() if v).split("/")[0]
    picture = next(
        (out / "images").rglob(Path(next(k for k, v in labels.items() if v)).stem + ".*")
    )
    from PIL import Image

    with Image.open(picture) as image:
        w, h = image.size
    by_class = {int(line[0]): line[1:] for line in objects}
    x0, y0, x1, y1 = reviewed["stored_box"]
    assert by_class[0] == pytest.approx(
        [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h], abs=1e-5
    )
    x0, y0, x1, y1 = DRAWN
    assert by_class[2] == pytest.approx(
        [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h], abs=1e-5
    )
    assert all(0 < v <= 1 for line in objects for v in line[1:])
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["per_class"] == {"Brazil": 1, "Japan": 1, ODD: 1}
    assert sorted(len(ids) for ids in manifest["annotations"].values()) == [2, 3]

    # Ultralytics takes it unchanged: its dataset check, then one tiny epoch.
    from server.engine.vision.detectors.yolo import offline_ultralytics

    yolo = offline_ultralytics(project.data_dir)
    from ultralytics.data.utils import check_det_dataset

    checked = check_det_dataset(str(out / "data.yaml"))
    assert checked["nc"] == 3 and checked["names"] == {0: "Brazil", 1: "Japan", 2: ODD}
    model = yolo.YOLO("yolo11n.yaml")
    result = model.train(
        data=str(out / "data.yaml"),
        epochs=1,
        imgsz=64,
        batch=2,
        workers=0,
        device="cpu",
        plots=False,
        amp=False,
        pretrained=False,
        project=str(tmp_path / "runs"),
        name="t",
        exist_ok=True,
        verbose=False,
    )
    assert "metrics/mAP50(B)" in result.results_dict
    assert (tmp_path / "runs" / "t" / "weights" / "last.pt").is_file()


def test_a_coco_export_loads_in_pycocotools_and_scores_its_own_boxes_perfectly(
    reviewed: dict[str, Any], tmp_path: Path
) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = tmp_path / "coco"
    export_dataset(str(reviewed["project"].file), out, "coco")
    files = {s: out / "annotations" / f"instances_{s}.json" for s in ("train", "val")}
    loaded = {s: COCO(str(f)) for s, f in files.items()}
    assert sum(len(c.getImgIds()) for c in loaded.values()) == 2
    assert sum(len(c.getAnnIds()) for c in loaded.values()) == 3
    [truth] = [c for c in loaded.values() if c.getAnnIds()]
    assert [c["name"] for c in truth.loadCats(truth.getCatIds())] == ["Brazil", "Japan", ODD]
    for image in truth.loadImgs(truth.getImgIds()):
        assert (out / "images" / image["file_name"]).is_file()
    # Its own boxes as detections: a perfect score, so the boxes and ids are consistent.
    detections = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 1.0,
        }
        for a in truth.loadAnns(truth.getAnnIds())
    ]
    evaluation = COCOeval(truth, truth.loadRes(detections), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[1] == pytest.approx(1.0)  # AP at IoU 0.5
    # Shifted by half a box, nothing matches at IoU 0.5.
    shifted = [
        {**d, "bbox": [d["bbox"][0] + d["bbox"][2] * 0.6, *d["bbox"][1:]]} for d in detections
    ]
    worse = COCOeval(truth, truth.loadRes(shifted), "bbox")
    worse.evaluate()
    worse.accumulate()
    worse.summarize()
    assert worse.stats[1] < 0.5


def test_filters_and_the_split_are_stable_and_a_bad_request_loses_nothing(
    reviewed: dict[str, Any], tmp_path: Path
) -> None:
    ref = str(reviewed["project"].file)
    out = tmp_path / "x"
    # Filters choose pictures: the table (it holds a missed thing) goes with every box
    # reviewed on it, and the picture of false positives only stays out.
    _, only_missed = export_dataset(ref, out, "yolo", types=["missed"])
    assert only_missed.per_class == {"Brazil": 1, "Japan": 1, ODD: 1}
    assert sum(only_missed.pictures.values()) == 1 and not sum(only_missed.backgrounds.values())
    _, negatives = export_dataset(ref, tmp_path / "neg", "yolo", types=["false_positive"])
    assert sum(negatives.backgrounds.values()) == 1 and sum(negatives.pictures.values()) == 1
    # The class numbers stay those of every annotation, whatever the filter.
    assert only_missed.classes == ["Brazil", "Japan", ODD]
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    with pytest.raises(IdentifyError, match="--overwrite"):
        export_dataset(ref, out, "yolo")
    with pytest.raises(IdentifyError, match="nothing to export"):
        export_dataset(ref, out, "yolo", since="2999-01-01", overwrite=True)
    with pytest.raises(IdentifyError, match="not an ISO date"):
        export_dataset(ref, out, "yolo", until="yesterday")
    with pytest.raises(IdentifyError, match="no taxonomy 'cards'"):
        export_dataset(ref, out, "yolo", taxonomy="cards")
    with pytest.raises(IdentifyError, match="annotation types"):
        export_dataset(ref, out, "yolo", types=["confirmd"])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(IdentifyError, match="holds other files"):
        export_dataset(ref, other, "coco")
    assert (other / "notes.txt").read_text() == "mine"
    # Overwritten, the same pictures keep their sides.
    export_dataset(ref, out, "yolo", overwrite=True)
    first = _read_labels(out)
    export_dataset(ref, out, "yolo", overwrite=True)
    assert _read_labels(out) == first
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_the_command_line_exports_and_says_what(reviewed: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        main, ["export", "--project", str(reviewed["project"].file), "--format", "coco", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "1 train / 1 val picture(s)" in result.output and "3 class(es)" in result.output
    bad = CliRunner().invoke(
        main,
        [
            "export",
            "--project",
            str(reviewed["project"].file),
            "--format",
            "coco",
            "--types",
            "nope",
            str(tmp_path / "y"),
        ],
    )
    assert bad.exit_code != 0 and "annotation types" in bad.output
    assert not (tmp_path / "y").exists()
