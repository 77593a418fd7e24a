"""``identify train`` with reviews: confirmed and corrected crops train the head beside
the synthetic views, the newest pictures' crops are held out, and the head is judged
(and adopted or not) on them, false positives included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from identify_tui.cli import main
from server.engine.project.config import DEFAULT_TAXONOMY, load_project
from server.engine.workflows.index import build_index
from tests.conftest import DEMO_REFS, write_project
from tests.integration.test_detected_objects import _scene as table_scene

CURATED = (
    "detector:\n  kind: quad\ntrain:\n  views: 6\n"
    "taxonomies:\n  - name: default\n    mode: separate\n"
)


def _table_top(seed: int) -> np.ndarray:
    """The wooden table with a pineapple on it: nothing the project is about."""
    import cv2

    from server.engine.vision.images import load_image

    rng = np.random.default_rng(1000 + seed)
    table = np.clip(rng.normal((140, 100, 70), 10, (400, 660, 3)), 0, 255).astype(np.uint8)
    fruit = load_image(DEMO_REFS / "pineapple.png", keep_alpha=True)
    fruit = cv2.resize(fruit, (200, 200))
    alpha = fruit[..., 3:4] / 255.0
    x, y = 100 + 40 * (seed % 5), 100
    spot = table[y : y + 200, x : x + 200]
    spot[:] = (fruit[..., :3] * alpha + spot * (1 - alpha)).astype(np.uint8)
    return table


def _reviewed(root: Path, embedder, pictures: int) -> Path:  # type: ignore[no-untyped-def]
    """A curated project (labels make no references) whose reviewer named both flags
    on each table and, every sixth picture, marked a pineapple as nothing there."""
    from server.engine.live.service import Service

    refs = root / "refs"
    refs.mkdir()
    for name in ("Brazil", "Japan", "apple_red", "banana"):  # no pineapple
        (refs / f"{name}.png").write_bytes((DEMO_REFS / f"{name}.png").read_bytes())
    file = write_project(root, refs, CURATED)
    project = load_project(file)
    build_index(project, embedder)
    service = Service.open(project, embedder)
    try:
        service.set_threshold("taxonomy", DEFAULT_TAXONOMY, 1.99, 0.0)
        for i in range(pictures):
            empty = i % 6 == 5
            frame = _table_top(i) if empty else table_scene(i)
            objects = service.identify_prepared(service.prepare(frame), source=f"p{i}")
            if empty:
                gestures = [(o, "false_positive", None) for o in objects]
            else:
                left, right = sorted(objects, key=lambda o: o.bbox[0])
                gestures = [(left, "corrected", "Brazil"), (right, "corrected", "Japan")]
            for obj, kind, label in gestures:
                if obj.review_id is None:
                    continue
                plan = service.plan_annotation(obj.review_id, kind, label)
                service.commit_annotation(plan, service.prepare_annotation(plan))
    finally:
        service.close()
    return file


def _train(file: Path) -> tuple[dict, str]:  # type: ignore[type-arg]
    result = CliRunner().invoke(main, ["train", "--project", str(file), "--json"])
    assert result.exit_code == 0, result.output
    text = CliRunner().invoke(main, ["versions", "list", "--project", str(file), "--kind", "head"])
    return json.loads(result.stdout), text.stdout


@pytest.mark.parametrize("pictures", [60])
def test_the_head_is_judged_on_the_newest_reviewed_crops(
    tmp_path: Path,
    embedder,
    pictures: int,  # type: ignore[no-untyped-def]
) -> None:
    file = _reviewed(tmp_path, embedder, pictures)
    report, versions = _train(file)
    real = report["real"]
    tables = pictures - pictures // 6
    assert real["trained_on"] + real["held_out"] + real["skipped"] == 2 * tables
    # The newest quarter of the pictures (tables and empty ones alike) is held out.
    assert real["held_out"] >= 20 and real["held_out"] < real["trained_on"]
    assert real["negatives_held_out"] >= 1
    for key in ("top1", "top1_plain", "auc", "auc_plain"):
        assert 0 <= real[key] <= 1, real
    better = real["top1"] >= real["top1_plain"] and real["auc"] >= real["auc_plain"]
    assert report["adopted"] == better, real
    if report["adopted"]:
        live = next(ln for ln in versions.splitlines() if ln.startswith("*"))
        assert "reviewed_top1" in live


def test_with_few_reviews_the_synthetic_views_decide_and_say_so(
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    file = _reviewed(tmp_path, embedder, 6)
    result = CliRunner().invoke(main, ["train", "--project", str(file)])
    assert result.exit_code == 0, result.output
    assert "reviewed crops: " in result.stdout
    assert "fewer than 20 reviewed crops held out: judged on the synthetic views" in result.stdout
