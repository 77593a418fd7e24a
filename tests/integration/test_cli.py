"""The command line end to end, in-process (click's runner) on real files and models."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from identify_tui.cli import main
from server.engine.vision.images import load_image
from tests.conftest import DEMO_QUERIES, DEMO_REFS, REPO, write_project

COMMANDS = sorted(main.commands)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_is_in_the_readme(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0
    assert "Example" in out and f"identify {command}" in out
    assert f"identify {command}" in (REPO / "README.md").read_text(encoding="utf-8")


def test_index_is_incremental_and_a_second_run_embeds_nothing(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs)
    code, out, err = run("index", "--project", str(project))
    assert code == 0, out
    assert "6 references in 6 classes (6 embedded, 0 unchanged" in out
    assert out.rstrip().endswith("with efficientnet-lite0/imagenet/gem3 on cpu"), out
    # No bar where nobody watches: one line as the stage starts, one as it ends.
    assert "embedding" not in out
    assert [line.split(":")[1].strip() for line in err.splitlines()] == ["embedding"] * 2
    code, out, _ = run("index", "--project", str(project))
    assert code == 0
    assert "(0 embedded, 6 unchanged, 0 removed, 0 skipped)" in out
    # A changed file is embedded again; a removed one leaves the index.
    shutil.copy(small_refs / "banana.png", small_refs / "Japan.png")
    (small_refs / "grapes.png").unlink()
    code, out, _ = run("index", "--project", str(project))
    assert "5 references in 5 classes (1 embedded, 4 unchanged, 2 removed" in out


def test_index_skips_bad_files_and_lists_them_without_a_traceback(
    tmp_path: Path, small_refs: Path
) -> None:
    good = (small_refs / "banana.png").read_bytes()
    (small_refs / "empty.png").write_bytes(b"")
    (small_refs / "truncated.png").write_bytes(good[: len(good) // 3])
    (small_refs / "notes.txt").write_text("not an image")
    (small_refs / "fake.jpg").write_text("<html>not a jpeg</html>")
    # A decompression bomb: 81 M pixels in a few kilobytes.
    Image.new("1", (9000, 9000)).save(small_refs / "huge.png")
    project = write_project(tmp_path, small_refs)
    code, out, err = run("index", "--project", str(project))
    assert code == 0, err
    assert "6 references in 6 classes" in out and "5 skipped" in out
    for name, why in [
        ("empty.png", "empty"),
        ("truncated.png", "truncated"),
        ("notes.txt", "not an image"),
        ("fake.jpg", "not an image"),
        ("huge.png", "9000x9000 pixels is over the .* pixel limit"),
    ]:
        assert re.search(rf"{name}: .*{why}", out), (name, out)
    assert "Traceback" not in out + err


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_index_of_a_folder_of_unreadable_images_is_one_clear_error_and_writes_nothing(
    tmp_path: Path,
) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (refs / "empty.png").write_bytes(b"")
    project = write_project(tmp_path, refs)
    code, out, err = run("index", "--project", str(project))
    assert code == 2 and out == ""
    stage, line = err.strip().splitlines()  # the stage as it started, then one error
    assert stage == "identify: embedding: 2 ..."
    assert line.startswith("identify: error: no reference image could be read (2 file(s) skipped: ")
    assert "garbage.jpg: " in line and "empty.png: the file is empty" in line
    data = tmp_path / "indexes" / "t"
    assert not {"identify.db", "index.usearch"} & set(_files(data))


def test_references_that_turn_unreadable_are_kept_not_lost(
    tmp_path: Path, small_refs: Path
) -> None:
    """Files damaged after indexing are skipped and listed; their references, vectors
    and the index stay as they were."""
    project = write_project(tmp_path, small_refs)
    assert run("index", "--project", str(project))[0] == 0
    index = tmp_path / "indexes" / "t" / "index.usearch"
    before = index.read_bytes()
    for path in small_refs.iterdir():
        path.write_bytes(path.read_bytes()[:100])
    code, out, err = run("index", "--project", str(project))
    assert code == 0, err
    assert "6 references in 6 classes (0 embedded, 0 unchanged, 0 removed, 6 skipped)" in out
    assert index.read_bytes() == before
    code, out, _ = run("match", "--project", str(project), str(DEMO_QUERIES / "known-brazil.jpg"))
    assert code == 0 and "Brazil" in out


def test_index_shows_a_progress_bar_on_a_terminal(tmp_path: Path, small_refs: Path) -> None:
    """On a real terminal (a pseudo-terminal here) the bar goes to stderr; stdout keeps
    only the summary."""
    project = write_project(tmp_path, small_refs)
    identify = Path(sys.executable).parent / "identify"
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [str(identify), "index", "--project", str(project)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**os.environ, "COLUMNS": "100"},
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child has closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.wait(timeout=300) == 0, seen
    terminal = seen.decode(errors="replace")
    assert "embedding" in terminal and "100%" in terminal
    assert "6 references in 6 classes" in out and "embedding" not in out


def test_index_of_a_folder_without_images_is_one_clear_error(tmp_path: Path) -> None:
    refs = tmp_path / "empty"
    refs.mkdir()
    project = write_project(tmp_path, refs)
    code, _out, err = run("index", "--project", str(project))
    assert code == 2
    assert err.strip().startswith("identify: error: no reference images found in")
    assert len(err.strip().splitlines()) == 1


def test_a_typo_in_the_project_file_names_the_key_and_the_line(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs)
    assert run("index", "--project", str(project))[0] == 0
    data = tmp_path / "indexes" / "t"
    before = _files(data)
    with project.open("a", encoding="utf-8") as f:
        f.write("index:\n  dtpye: f16\n")
    for command in (["index"], ["verify"], ["match", str(DEMO_QUERIES / "known-brazil.jpg")]):
        code, out, err = run(command[0], "--project", str(project), *command[1:])
        assert code == 2 and out == ""
        assert f"{project}:9:" in err and "'dtpye'" in err and "did you mean 'dtype'" in err
    assert _files(data) == before


def test_match_json_has_the_documented_shape(tmp_path: Path, small_refs: Path) -> None:
    project = write_project(tmp_path, small_refs)
    assert run("index", "--project", str(project))[0] == 0
    query = DEMO_QUERIES / "known-pineapple.jpg"
    code, out, _ = run("match", "--project", str(project), "--json", str(query))
    assert code == 0
    line = json.loads(out)
    assert line["path"] == str(query)
    (obj,) = line["objects"]
    assert set(obj) >= {"bbox", "label", "score", "margin", "matched", "candidates"}
    # The object's box when it was located in the photo, None for the whole photo.
    h, w = load_image(query).shape[:2]
    assert obj["bbox"] is None or (
        len(obj["bbox"]) == 4
        and 0 <= obj["bbox"][0] < obj["bbox"][2] <= w
        and 0 <= obj["bbox"][1] < obj["bbox"][3] <= h
    )
    assert obj["label"] == "Pineapple" and obj["matched"] is True
    assert obj["candidates"][0]["label"] == "Pineapple"
    assert all(set(c) >= {"label", "score"} for c in obj["candidates"])


def test_match_reports_an_unreadable_file_and_exits_non_zero(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs)
    run("index", "--project", str(project))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    good = DEMO_QUERIES / "known-brazil.jpg"
    code, out, _ = run("match", "--project", str(project), "--json", str(bad), str(good))
    assert code == 2
    first, second = (json.loads(x) for x in out.splitlines())
    assert "error" in first and first["objects"] == []
    assert second["objects"][0]["label"] == "Brazil"


def test_match_before_index_says_to_run_index(tmp_path: Path, small_refs: Path) -> None:
    project = write_project(tmp_path, small_refs)
    code, _, err = run("match", "--project", str(project), str(DEMO_QUERIES / "known-brazil.jpg"))
    assert code == 2 and "identify index" in err


def test_an_index_built_with_another_model_is_refused_and_left_untouched(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs)
    run("index", "--project", str(project))
    meta = tmp_path / "indexes" / "t" / "index.usearch.json"
    doc = json.loads(meta.read_text())
    doc["model_id"] = "open_clip/ViT-B-32/laion2b_s34b_b79k"
    doc["dim"] = 512
    meta.write_text(json.dumps(doc))
    before = (tmp_path / "indexes" / "t" / "index.usearch").read_bytes()
    code, _, err = run("match", "--project", str(project), str(DEMO_QUERIES / "known-brazil.jpg"))
    assert code == 2
    assert "built with open_clip/ViT-B-32" in err and "efficientnet-lite0" in err
    assert (tmp_path / "indexes" / "t" / "index.usearch").read_bytes() == before


def test_verify_writes_thresholds_that_match_then_uses(tmp_path: Path, small_refs: Path) -> None:
    project = write_project(tmp_path, small_refs)
    run("index", "--project", str(project))
    code, out, _ = run("verify", "--project", str(project), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["queries"] == 12 and report["written"] is True
    assert 0.0 <= report["predicted_open_set_accuracy"] <= 1.0
    text = project.read_text()
    assert "calibration:" in text and f"threshold: {report['threshold']}" in text
    # Identification now uses the calibrated thresholds, not the model's defaults.
    from server.engine.decide.identifier import Identifier
    from server.engine.project.config import load_project
    from server.engine.vision.embedders import project_embedder

    proj = load_project(project)
    ident = Identifier.open(proj, project_embedder(proj.config))
    try:
        assert ident.thresholds.calibrated
        assert ident.thresholds.default == (report["threshold"], report["margin_threshold"])
    finally:
        ident.close()
    code, out, err = run(
        "verify", "--project", str(project), "--no-write", "--json", "--min-accuracy", "1.0"
    )
    again = json.loads(out[: out.rindex("}") + 1])
    assert again["written"] is False
    if again["predicted_open_set_accuracy"] < 1.0:
        assert code == 3 and "below --min-accuracy" in err
    else:
        assert code == 0


def test_init_writes_a_project_that_loads(in_tmp: Path, small_refs: Path) -> None:
    code, out, _ = run("init", "cards", "--refs", str(small_refs), "--model", "efficientnet-lite0")
    assert code == 0
    path = Path(out.strip())
    assert path == in_tmp / "projects" / "cards.yaml"
    from server.engine.project.config import load_project

    proj = load_project("cards", cwd=in_tmp)
    assert proj.config.references[0].path == small_refs.resolve()
    code, _, err = run("init", "cards", "--refs", str(small_refs))
    assert code == 2 and "already exists" in err


def test_init_picks_the_quad_finder_for_flat_references_only(
    in_tmp: Path, small_refs: Path
) -> None:
    from server.engine.project.config import load_project

    flags = in_tmp / "flags"
    flags.mkdir()
    for name in ("Brazil", "Japan", "Canada", "India"):
        shutil.copy(DEMO_REFS / f"{name}.png", flags / f"{name}.png")
    code, _, err = run("init", "flags", "--refs", str(flags), "--model", "efficientnet-lite0")
    assert code == 0 and "detector quad: 4 of 4 references are flat rectangles" in err
    assert load_project("flags", cwd=in_tmp).config.detector.kind == "quad"
    # Two flags and four fruit cut-outs: the window search.
    code, _, err = run("init", "mixed", "--refs", str(small_refs), "--model", "efficientnet-lite0")
    assert code == 0 and "detector locate: 4 of 6 references are cut-outs" in err
    assert load_project("mixed", cwd=in_tmp).config.detector.kind == "locate"


def test_match_keeps_input_order_across_batches_and_errors(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs)  # batch_size 4
    run("index", "--project", str(project))
    bad = tmp_path / "empty.jpg"
    bad.write_bytes(b"")
    names = [
        "known-brazil",
        "known-japan",
        "known-pineapple",
        "known-grapes",
        "known-banana",
        "known-apple_red",
    ]
    paths = [str(DEMO_QUERIES / f"{n}.jpg") for n in names]
    paths.insert(3, str(bad))
    code, out, _ = run("match", "--project", str(project), "--json", "--no-record", *paths)
    assert code == 2
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["path"] for x in lines] == paths
    assert "empty" in lines[3]["error"]
    top = [x["objects"][0]["candidates"][0]["label"] for i, x in enumerate(lines) if i != 3]
    assert top[:3] == ["Brazil", "Japan", "Pineapple"]


def test_verify_samples_large_sets_down_to_max_references(tmp_path: Path, small_refs: Path) -> None:
    project = write_project(tmp_path, small_refs, extra="  max_references: 3\n")
    run("index", "--project", str(project))
    code, out, _ = run("verify", "--project", str(project), "--json", "--no-write")
    assert code == 0
    report = json.loads(out)
    assert report["references"] == 6 and report["queries"] == 3 * 2
    assert any("sample of 3 of 6" in n for n in report["notes"])


def test_verify_calibrates_whole_pictures_apart_when_locating(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs)  # verify: 2 crops per reference
    run("index", "--project", str(project))
    code, out, _ = run("verify", "--project", str(project), "--json")
    assert code == 0
    pictures = json.loads(out)["pictures"]
    assert pictures["queries"] == 12  # 2 located camera frames per reference
    assert 0.0 <= pictures["predicted_open_set_accuracy"] <= 1.0
    text = project.read_text()
    assert f"picture_threshold: {pictures['threshold']}" in text
    from server.engine.decide.identifier import Identifier
    from server.engine.project.config import load_project
    from server.engine.vision.embedders import project_embedder

    proj = load_project(project)
    ident = Identifier.open(proj, project_embedder(proj.config))
    try:
        assert ident.thresholds.picture == (pictures["threshold"], pictures["margin_threshold"])
        # A whole picture is decided at the pictures' thresholds, a crop at the crops'.
        decision, _ = ident.identify_picture(load_image(DEMO_QUERIES / "known-brazil.jpg"))
        assert (decision.threshold, decision.margin_threshold) == ident.thresholds.picture
        (crop,) = ident.identify([load_image(DEMO_QUERIES / "known-brazil.jpg")])
        assert (crop.threshold, crop.margin_threshold) == ident.thresholds.default
    finally:
        ident.close()
    # Identifying crops only (locate off): nothing to calibrate apart.
    off = write_project(tmp_path / "off", small_refs, "locate:\n  enabled: false\n")
    run("index", "--project", str(off))
    code, out, _ = run("verify", "--project", str(off), "--json")
    assert code == 0 and json.loads(out)["pictures"] is None
    assert "picture_threshold" not in off.read_text()


def test_the_unknown_pass_locates_as_if_the_hidden_class_were_not_indexed(
    tmp_path: Path, small_refs: Path
) -> None:
    from server.engine.decide.identifier import Identifier
    from server.engine.project.config import load_project
    from server.engine.vision.embedders import project_embedder

    project = write_project(tmp_path, small_refs)
    run("index", "--project", str(project))
    proj = load_project(project)
    ident = Identifier.open(proj, project_embedder(proj.config))
    try:
        frame = load_image(DEMO_QUERIES / "known-brazil.jpg")
        regions = ident.regions(frame, exclude="Brazil")
        keys, _ = ident._nearest(np.stack([r.evidence.vector for r in regions]), "Brazil")
        assert all(ident.labels[int(k)] != "Brazil" for k in keys)
        for region in regions:
            ranked = ident.candidates(region.evidence, exclude="Brazil")
            assert ranked and all(c.label != "Brazil" for c in ranked)
        # verify asks both ways at once, sharing what the two have in common: the same.
        known, hidden = ident.regions_with_hidden(frame, "Brazil")
        for pair in ((known, ident.regions(frame)), (hidden, regions)):
            assert [r.box for r in pair[0]] == [r.box for r in pair[1]]
            for a, b in zip(*pair, strict=True):
                np.testing.assert_allclose(a.evidence.vector, b.evidence.vector, atol=1e-5)
    finally:
        ident.close()


def test_gc_applies_the_retention_policy_and_says_what_it_freed(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs)
    code, out, err = run("gc", "--project", str(project))
    assert code == 2 and "run identify index first" in err
    assert run("index", "--project", str(project))[0] == 0
    from server.engine.project.config import load_project

    orphan = load_project(project).data_dir / "media" / "crops" / "ab" / "orphan.jpg"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x" * 2_000_000)
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    code, out, _ = run("gc", "--project", str(project))
    assert code == 0, out
    assert "0 expired picture(s), 1 orphan file(s), 2.0 MB freed" in out
    assert not orphan.exists()


def test_stats_reads_the_database_and_says_what_the_estimate_waits_for(
    tmp_path: Path, small_refs: Path
) -> None:
    project = write_project(tmp_path, small_refs)
    code, _, err = run("stats", "--project", str(project))
    assert code == 2 and "run identify index first" in err
    assert run("index", "--project", str(project))[0] == 0
    code, out, _ = run("stats", "--project", str(project))
    assert code == 0, out
    assert out.startswith("annotations 0 (last 7 days 0, 7 days before 0); queue 0 pending")
    assert "reviewed: not yet (0 reviews; waiting for any review)" in out
    code, out, _ = run("stats", "--project", str(project), "--json")
    body = json.loads(out)
    assert body["annotations"] == 0 and body["reality"]["reviewed"] is None


@pytest.fixture()
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model load fails the test: what is checked must be checked before."""
    from server.engine.vision import embedders

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the project was checked")

    monkeypatch.setattr(embedders, "create_embedder", refuse)
    monkeypatch.setattr(embedders, "project_embedder", refuse)


@pytest.mark.parametrize("command", ["index", "verify", "train", "match", "serve"])
def test_project_mistakes_are_reported_before_the_model_loads(
    tmp_path: Path, small_refs: Path, no_model_loads: None, command: str
) -> None:
    extra = {"match": [str(DEMO_QUERIES / "known-brazil.jpg")], "serve": ["--port", "0"]}.get(
        command, []
    )
    missing = write_project(tmp_path, tmp_path / "no-such-folder")
    code, _, err = run(command, "--project", str(missing), *extra)
    assert code == 2
    if command == "index":
        assert "reference folder not found" in err
    else:  # not indexed: said before the model loads, and nothing is created
        assert "has no index yet" in err and not (tmp_path / "indexes").exists()
    typo = (
        write_project(tmp_path, small_refs)
        .read_text()
        .replace("efficientnet-lite0", "efficientnet-lite")
    )
    (tmp_path / "projects" / "t.yaml").write_text(typo)
    code, _, err = run(command, "--project", str(tmp_path / "projects" / "t.yaml"), *extra)
    assert code == 2 and "did you mean 'efficientnet-lite0'" in err


def test_a_misspelt_project_name_gets_a_suggestion(
    tmp_path: Path, small_refs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, small_refs)  # projects/t.yaml
    (tmp_path / "projects" / "fresh.yaml").write_text(
        (tmp_path / "projects" / "t.yaml").read_text()
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = run("index", "--project", "frsh")
    assert code == 2 and "did you mean 'fresh'?" in err


@pytest.mark.parametrize("cached", [True, False])
def test_init_picks_clip_only_when_its_weights_are_here(
    tmp_path: Path, small_refs: Path, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    from server.engine.vision.embedders import openclip

    monkeypatch.setattr(openclip, "weights_available", lambda name, tag: cached)
    monkeypatch.chdir(tmp_path)
    code, out, err = run("init", "cards", "--refs", str(small_refs))
    assert code == 0, err
    text = Path(out.strip()).read_text()
    model = "ViT-B-32" if cached else "efficientnet-lite0"
    assert f"name: {model}" in text and f"model {model}:" in err
    if not cached:
        assert "no ViT-B-32 weights on this machine" in err


def test_clip_without_weights_fails_fast_offline_with_one_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import open_clip

    from server.engine.errors import ModelUnavailableError
    from server.engine.vision.embedders import openclip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(openclip, "weights_available", lambda name, tag: False)

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("the hub was tried")

    monkeypatch.setattr(open_clip, "create_model", no_download)
    with pytest.raises(ModelUnavailableError, match="not cached on this machine"):
        openclip.create_openclip_model("ViT-B-32", "laion2b_s34b_b79k", None)


def test_long_commands_say_each_stage_on_a_pipe(tmp_path: Path, small_refs: Path) -> None:
    project = write_project(tmp_path, small_refs)
    assert run("index", "--project", str(project))[0] == 0
    code, _, err = run("verify", "--project", str(project))
    assert code == 0
    assert "identify: self-testing references: 6 ..." in err
    assert re.search(r"identify: self-testing references: done in \d+\.\ds", err)
    code, out, err = run(
        "match",
        "--project",
        str(project),
        *[str(p) for p in sorted(DEMO_QUERIES.glob("known-*.jpg"))[:3]],
    )
    assert code == 0 and "identify: identifying: 3 ..." in err and len(out.splitlines()) == 3


def test_models_lists_a_short_useful_list_and_all_on_request() -> None:
    code, out, _ = run("models")
    lines = out.splitlines()
    assert code == 0 and len(lines) <= 12
    assert lines[0].startswith("efficientnet-lite0") and " here " in lines[0]
    assert " torch+mlx " in lines[0]  # the backends that run it
    assert any(line.startswith("ViT-B-32 ") for line in lines)
    assert "identify models --all" in lines[-1]
    code, out, _ = run("models", "--all")
    assert code == 0 and len(out.splitlines()) > 50


def test_an_unknown_says_what_it_lacked_and_uncalibrated_defaults_are_named(
    tmp_path: Path, small_refs: Path
) -> None:
    from identify_tui.cli.match import explain
    from server.engine.decide.decision import Candidate, Decision

    close = Decision(
        label=None,
        score=0.81,
        margin=0.025,
        matched=False,
        reason="low_margin",
        candidates=(Candidate("Ace of Hearts", 0.81, 1, 0.81),),
        threshold=0.7,
        margin_threshold=0.04,
    )
    assert explain(close) == (
        "unknown (low_margin: margin 0.025 < 0.040 needed; closest Ace of Hearts, score 0.810)"
    )
    project = write_project(tmp_path, small_refs)
    assert run("index", "--project", str(project))[0] == 0
    code, _, err = run("match", "--project", str(project), str(DEMO_QUERIES / "known-brazil.jpg"))
    assert code == 0 and "is not calibrated for efficientnet-lite0" in err
    assert "run identify verify" in err
