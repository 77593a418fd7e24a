"""The project file: loading, path resolution, errors that name file/line/key, calibration."""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from server.engine.errors import ProjectConfigError
from server.engine.project.config import (
    Calibration,
    Projection,
    load_project,
    write_calibration,
    write_projection,
)
from server.engine.project.references import scan_references


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _png(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((32, 32, 3), value, np.uint8)
    cv2.circle(img, (16, 16), 8, (255 - value, 0, value), -1)
    assert cv2.imwrite(str(path), img)


VALID = """
name: demo
model:
  name: efficientnet-lite0
  batch_size: 8
index:
  dtype: i8
  top_k: 10
references:
  - path: refs/cards
    taxonomy: cards
  - path: refs/other
taxonomies:
  - name: cards
    threshold: 0.7
    margin: 0.05
"""


# --- loading and paths ----------------------------------------------------------------


def test_valid_project_loads_with_typed_values(tmp_path: Path) -> None:
    file = _write(tmp_path / "projects" / "demo.yaml", VALID)
    project = load_project(file)
    cfg = project.config
    assert project.name == "demo"
    assert project.file == file.resolve()
    assert cfg.model.name == "efficientnet-lite0"
    assert cfg.model.batch_size == 8
    assert cfg.index.dtype == "i8"
    assert cfg.index.top_k == 10
    assert cfg.index.connectivity == 16  # default kept
    assert [r.taxonomy for r in cfg.references] == ["cards", "default"]
    assert cfg.taxonomy("cards").threshold == 0.7
    assert cfg.taxonomy("default").threshold is None  # exists even when not declared
    assert cfg.calibration is None


def test_relative_reference_paths_resolve_against_the_yaml_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _write(
        tmp_path / "somewhere" / "deep" / "p.yaml",
        """
        references:
          - path: refs
          - path: ../shared_refs
        model:
          checkpoint: weights/model.pt
        verify:
          backgrounds: bg
    """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_project(file).config
    base = file.parent.resolve()
    assert cfg.references[0].path == base / "refs"
    assert cfg.references[1].path == (tmp_path / "somewhere" / "shared_refs").resolve()
    assert cfg.model.checkpoint == base / "weights" / "model.pt"
    assert cfg.verify.backgrounds == base / "bg"


def test_absolute_reference_path_is_kept(tmp_path: Path) -> None:
    absolute = tmp_path / "abs_refs"
    file = _write(tmp_path / "p.yaml", f"references:\n  - path: {absolute}\n")
    assert load_project(file).config.references[0].path == absolute


def test_project_given_as_a_name_is_found_under_projects_of_cwd(tmp_path: Path) -> None:
    file = _write(tmp_path / "projects" / "demo.yaml", VALID)
    project = load_project("demo", cwd=tmp_path)
    assert project.file == file.resolve()


def test_project_name_with_yml_extension_is_found(tmp_path: Path) -> None:
    file = _write(tmp_path / "projects" / "short.yml", "references:\n  - path: refs\n")
    assert load_project("short", cwd=tmp_path).file == file.resolve()


def test_project_given_as_a_relative_path_resolves_against_cwd(tmp_path: Path) -> None:
    file = _write(tmp_path / "configs" / "mine.yaml", "references:\n  - path: refs\n")
    project = load_project("configs/mine.yaml", cwd=tmp_path)
    assert project.file == file.resolve()
    assert project.name == "mine"


def test_project_given_as_an_absolute_path_loads(tmp_path: Path) -> None:
    file = _write(tmp_path / "a" / "mine.yaml", "references:\n  - path: refs\n")
    assert load_project(file).file == file.resolve()


def test_project_name_is_found_when_a_folder_of_the_same_name_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A natural layout: the reference folder ./cards/ and the project projects/cards.yaml.
    file = _write(tmp_path / "projects" / "cards.yaml", "references:\n  - path: ../cards\n")
    (tmp_path / "cards").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_project("cards", cwd=tmp_path).file == file.resolve()


def test_unknown_project_name_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ProjectConfigError) as err:
        load_project("nope", cwd=tmp_path)
    assert "nope" in err.value.message
    assert "projects/nope.yaml" in err.value.message


def test_missing_project_file_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ProjectConfigError, match="not found"):
        load_project(tmp_path / "missing.yaml")


def test_default_data_dir_is_indexes_beside_projects_folder(tmp_path: Path) -> None:
    _write(tmp_path / "projects" / "demo.yaml", "references:\n  - path: refs\n")
    project = load_project("demo", cwd=tmp_path)
    assert project.data_dir == tmp_path.resolve() / "indexes" / "demo"
    assert project.db_path == project.data_dir / "identify.db"
    assert project.index_path == project.data_dir / "index.usearch"


def test_default_data_dir_uses_the_name_key_over_the_file_stem(tmp_path: Path) -> None:
    _write(
        tmp_path / "projects" / "file_stem.yaml", "name: real-name\nreferences:\n  - path: refs\n"
    )
    project = load_project("file_stem", cwd=tmp_path)
    assert project.name == "real-name"
    assert project.data_dir == tmp_path.resolve() / "indexes" / "real-name"


def test_default_data_dir_outside_projects_sits_beside_the_file(tmp_path: Path) -> None:
    file = _write(tmp_path / "work" / "p.yaml", "references:\n  - path: refs\n")
    assert load_project(file).data_dir == file.parent.resolve() / "indexes" / "p"


def test_explicit_relative_data_dir_resolves_against_the_file(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "projects" / "p.yaml", "data_dir: ../store/p\nreferences:\n  - path: refs\n"
    )
    assert load_project(file).data_dir == tmp_path.resolve() / "store" / "p"


def test_invalid_project_name_is_rejected(tmp_path: Path) -> None:
    file = _write(tmp_path / "p.yaml", "name: '../escape'\nreferences:\n  - path: refs\n")
    with pytest.raises(ProjectConfigError, match="project name"):
        load_project(file)


# --- errors that name the file, the line and the key -----------------------------------


def test_typo_key_inside_a_taxonomy_names_file_line_key_and_suggestion(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "p.yaml",
        """
        references:
          - path: refs
            taxonomy: cards
        taxonomies:
          - name: cards
            treshold: 0.7
    """,
    )
    with pytest.raises(ProjectConfigError) as err:
        load_project(file)
    msg = err.value.message
    assert msg.startswith(f"{file.resolve()}:6:")
    assert "'treshold'" in msg
    assert "did you mean 'threshold'" in msg
    assert "taxonomies[0]" in msg


def test_typo_key_at_top_level_names_file_line_key_and_suggestion(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "p.yaml",
        """
        # my project
        name: demo
        refrences:
          - path: refs
    """,
    )
    with pytest.raises(ProjectConfigError) as err:
        load_project(file)
    msg = err.value.message
    assert msg.startswith(f"{file.resolve()}:3:")
    assert "unknown key 'refrences'" in msg
    assert "did you mean 'references'" in msg


def test_wrong_type_names_the_line_of_the_value(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "p.yaml",
        """
        references:
          - path: refs
        taxonomies:
          - name: cards
            threshold: high
    """,
    )
    with pytest.raises(ProjectConfigError) as err:
        load_project(file)
    msg = err.value.message
    assert msg.startswith(f"{file.resolve()}:5:")
    assert "taxonomies[0].threshold" in msg
    assert "expected a number" in msg
    assert "'high'" in msg


def test_wrong_literal_value_lists_the_choices(tmp_path: Path) -> None:
    file = _write(tmp_path / "p.yaml", "references:\n  - path: refs\nindex:\n  dtype: f64\n")
    with pytest.raises(ProjectConfigError) as err:
        load_project(file)
    assert ":4:" in err.value.message
    assert "'f16'" in err.value.message and "'f64'" in err.value.message


def test_boolean_is_not_accepted_as_a_number(tmp_path: Path) -> None:
    file = _write(tmp_path / "p.yaml", "references:\n  - path: refs\nmodel:\n  batch_size: true\n")
    with pytest.raises(ProjectConfigError, match="expected an integer"):
        load_project(file)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "p.yaml",
        """
        references:
          - path: refs
         model: x
    """,
    )
    with pytest.raises(ProjectConfigError) as err:
        load_project(file)
    assert err.value.message.startswith(f"{file.resolve()}:3: invalid YAML")


def test_empty_file_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("", encoding="utf-8")
    with pytest.raises(ProjectConfigError, match="empty"):
        load_project(file)


def test_comment_only_file_is_empty(tmp_path: Path) -> None:
    file = _write(tmp_path / "p.yaml", "# nothing here yet\n")
    with pytest.raises(ProjectConfigError, match="empty"):
        load_project(file)


def test_top_level_list_is_a_config_error(tmp_path: Path) -> None:
    file = _write(tmp_path / "p.yaml", "- references\n")
    with pytest.raises(ProjectConfigError, match="expected a mapping"):
        load_project(file)


def test_missing_references_key_is_reported(tmp_path: Path) -> None:
    file = _write(tmp_path / "p.yaml", "name: demo\n")
    with pytest.raises(ProjectConfigError, match="missing required key 'references'"):
        load_project(file)


def test_duplicate_key_is_reported_with_its_line(tmp_path: Path) -> None:
    file = _write(tmp_path / "p.yaml", "references:\n  - path: a\nname: x\nname: y\n")
    with pytest.raises(ProjectConfigError) as err:
        load_project(file)
    assert ":4:" in err.value.message and "appears twice" in err.value.message


def test_reference_with_undeclared_taxonomy_is_a_config_error(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "p.yaml",
        """
        references:
          - path: refs
            taxonomy: coins
        taxonomies:
          - name: cards
    """,
    )
    with pytest.raises(ProjectConfigError) as err:
        load_project(file)
    assert str(file.resolve()) in err.value.message
    assert "'coins'" in err.value.message
    assert "not declared" in err.value.message


def test_duplicate_taxonomy_names_are_rejected(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "p.yaml",
        """
        references:
          - path: refs
        taxonomies:
          - name: cards
          - name: cards
    """,
    )
    with pytest.raises(ProjectConfigError, match="unique: cards"):
        load_project(file)


def test_post_init_validation_becomes_a_config_error(tmp_path: Path) -> None:
    file = _write(tmp_path / "p.yaml", "references:\n  - path: refs\nmodel:\n  batch_size: 0\n")
    with pytest.raises(ProjectConfigError, match="batch_size must be at least 1"):
        load_project(file)


def test_per_class_thresholds_load_from_yaml(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "p.yaml",
        """
        references:
          - path: refs
            taxonomy: cards
        taxonomies:
          - name: cards
            threshold: 0.7
            classes:
              Dark Magician:
                threshold: 0.9
              Kuriboh: {margin: 0.2}
    """,
    )
    classes = load_project(file).config.taxonomy("cards").classes
    assert classes["Dark Magician"].threshold == 0.9
    assert classes["Dark Magician"].margin is None
    assert classes["Kuriboh"].margin == 0.2


def test_numeric_reference_folder_name_loads_as_a_path(tmp_path: Path) -> None:
    # A folder called 2024 is a plain YAML integer; it must still be a path, not a crash.
    file = _write(tmp_path / "p.yaml", "references:\n  - path: 2024\n")
    assert load_project(file).config.references[0].path == tmp_path.resolve() / "2024"


# --- write_calibration ---------------------------------------------------------------

COMMENTED = """
# My card project -- keep this comment
name: demo  # inline comment on name
references:
  - path: refs  # the scans
calibration:  # written by `identify verify`
  threshold: 0.4
  margin: 0.02
  model: old/model
  verified_at: '2020-01-01T00:00:00+00:00'
# comment that belongs to taxonomies
taxonomies:
  - name: default
    margin: 0.05
"""


def test_write_calibration_replaces_the_existing_block_and_keeps_comments(tmp_path: Path) -> None:
    file = _write(tmp_path / "projects" / "demo.yaml", COMMENTED)
    cal = Calibration(
        threshold=0.61,
        margin=0.07,
        model="efficientnet-lite0/imagenet",
        predicted_open_set_accuracy=0.93,
        verified_at="2024-05-06T07:08:09+00:00",
    )
    write_calibration(file, cal)
    text = file.read_text(encoding="utf-8")
    assert text.count("calibration:") == 1
    assert "old/model" not in text and "0.4\n" not in text
    for comment in (
        "# My card project -- keep this comment",
        "# inline comment on name",
        "# the scans",
        "# comment that belongs to taxonomies",
    ):
        assert comment in text
    assert text.index("# comment that belongs to taxonomies") < text.index("taxonomies:")
    cfg = load_project(file).config
    assert cfg.calibration == cal
    assert cfg.taxonomy("default").margin == 0.05
    assert cfg.name == "demo"
    assert not list(file.parent.glob(".*.tmp"))


def test_write_calibration_appends_when_there_is_no_block(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("# header\nreferences:\n  - path: refs", encoding="utf-8")  # no final \n
    write_calibration(file, Calibration(threshold=0.5, margin=0.03, model="m"))
    text = file.read_text(encoding="utf-8")
    assert text.startswith("# header\nreferences:\n  - path: refs\ncalibration:")
    cal = load_project(file).config.calibration
    assert cal is not None
    assert (cal.threshold, cal.margin, cal.model) == (0.5, 0.03, "m")
    assert cal.predicted_open_set_accuracy is None


def test_write_calibration_twice_leaves_one_block_with_the_latest_values(tmp_path: Path) -> None:
    file = _write(tmp_path / "p.yaml", "references:\n  - path: refs\n")
    write_calibration(file, Calibration(threshold=0.5, margin=0.03, model="m"))
    write_calibration(file, Calibration(threshold=0.55, margin=0.04, model="m"))
    assert file.read_text(encoding="utf-8").count("calibration:") == 1
    cal = load_project(file).config.calibration
    assert cal is not None and (cal.threshold, cal.margin) == (0.55, 0.04)


def test_write_projection_keeps_calibration_and_stores_a_relative_path(tmp_path: Path) -> None:
    file = _write(tmp_path / "projects" / "demo.yaml", COMMENTED)
    head = tmp_path / "indexes" / "demo" / "models" / "head-0123456789ab.pt"
    write_projection(
        file,
        Projection(
            file=head, id="head-0123456789ab", validation_top1=0.9, validation_top1_plain=0.8
        ),
    )
    text = file.read_text(encoding="utf-8")
    assert "file: ../indexes/demo/models/head-0123456789ab.pt" in text
    assert "# written by `identify train`" in text and "model: old/model" in text
    cfg = load_project(file).config
    assert cfg.projection is not None and cfg.projection.file == head.resolve()
    assert cfg.projection.id == "head-0123456789ab"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("train:\n  views: 1", "train.views must be between 2 and 256"),
        ("train:\n  stesp: 10", "did you mean 'steps'"),
        ("rerank:\n  appearance: -1", "rerank.appearance must be between 0 and 2"),
        ("rerank:\n  appearance_centre: 3", "rerank.appearance_centre"),
        ("rerank:\n  aligned: -1", "rerank.aligned"),
        ("rerank:\n  aligned_shortlist: -2", "rerank.aligned_shortlist must be between 0"),
        ("rerank:\n  aligned_refined: 1001", "rerank.aligned_refined must be between 0"),
        ("rerank:\n  apearance: 0.2", "did you mean 'appearance'"),
        ("verify:\n  picture_queries: 100", "verify.picture_queries must be between 0 and 64"),
    ],
)
def test_settings_are_validated_with_the_key_named(
    tmp_path: Path, section: str, message: str
) -> None:
    file = _write(tmp_path / "p.yaml", f"references:\n  - path: refs\n{section}\n")
    with pytest.raises(ProjectConfigError, match=message):
        load_project(file)


# --- hierarchical labels --------------------------------------------------------------


def test_reference_prefix_gives_hierarchical_labels(tmp_path: Path) -> None:
    _png(tmp_path / "refs" / "LOCH-JP001_dark_magician_scr.png", 40)
    _png(tmp_path / "refs" / "kuriboh" / "front.png", 90)
    _png(tmp_path / "refs" / "kuriboh" / "sub" / "back.jpg", 140)
    (tmp_path / "refs" / "notes.txt").write_text("not an image", encoding="utf-8")
    _png(tmp_path / "plain" / "blue_eyes.png", 200)
    file = _write(
        tmp_path / "p.yaml",
        """
        references:
          - path: refs
            prefix: Cards > Yu-Gi-Oh
          - path: plain
    """,
    )
    found, skipped = scan_references(load_project(file).config)
    by_path = {f.path.name: f for f in found}
    assert by_path["LOCH-JP001_dark_magician_scr.png"].label == "Cards > Yu-Gi-Oh > Dark Magician"
    assert by_path["LOCH-JP001_dark_magician_scr.png"].rarity == "scr"
    assert by_path["front.png"].label == "Cards > Yu-Gi-Oh > Kuriboh"
    assert by_path["back.jpg"].label == "Cards > Yu-Gi-Oh > Kuriboh"
    assert by_path["blue_eyes.png"].label == "Blue Eyes"
    assert [p.name for p, _ in skipped] == ["notes.txt"]


def test_locate_settings_load_and_out_of_range_ones_are_named(tmp_path: Path) -> None:
    good = _write(
        tmp_path / "good.yaml",
        """
        references:
          - path: refs
        locate:
          enabled: false
          candidates: 5
    """,
    )
    cfg = load_project(good).config.locate
    assert cfg.enabled is False and cfg.candidates == 5
    bad = _write(
        tmp_path / "bad.yaml",
        """
        references:
          - path: refs
        locate:
          candidates: 40
    """,
    )
    with pytest.raises(ProjectConfigError) as err:
        load_project(bad)
    assert "locate.candidates must be between 0 and 16" in err.value.message


def test_appearance_can_be_turned_off(tmp_path: Path) -> None:
    file = _write(tmp_path / "p.yaml", "references:\n  - path: refs\nrerank:\n  appearance: 0\n")
    assert load_project(file).config.rerank.appearance == 0


def test_the_readme_project_example_is_a_valid_project(tmp_path: Path) -> None:
    """The annotated example under "Project files" in the README loads as it is shown:
    every key it documents exists, with a value of the right type."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Project files", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    project = load_project(_write(tmp_path / "projects" / "cards.yaml", example))
    assert project.config.references[0].path == (tmp_path / "refs" / "cards").resolve()
    assert project.config.references[0].prefix == "Cards > Yu-Gi-Oh"
    assert "ssp" in project.config.naming.rarity_suffixes
    assert project.config.server.cameras[0].name == "door"


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("references:\n  - path: .\n model:\n  name: x\n", "indented differently"),
        ("references:\n\t- path: .\n", "spaces, not tabs"),
    ],
)
def test_yaml_syntax_errors_say_what_to_look_at(tmp_path: Path, text: str, hint: str) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(text)
    with pytest.raises(ProjectConfigError, match=hint):
        load_project(file)
