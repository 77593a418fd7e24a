"""A YOLO export made ready to fine-tune a detector on: class agnostic (one class,
``thing``: identification names the thing, the detector only finds it), in the base
model's task (a keypoint model's corners written as absent, so its corner loss ignores
them and learns from the boxes alone), with the synthetic scenes it was trained on
replayed beside the real pictures so that a few hundred corrections do not make it
forget the rest. The real pictures' val side, never trained on, is what it is measured
on."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from server.engine.training.export import SPLITS

THING = "thing"


def training_set(export: Path, out: Path, keypoints: int, replay: Path | None) -> Path:
    """Write the training labels under ``out`` (the export's pictures linked, not copied
    when the file system allows it); returns the dataset file."""
    shutil.rmtree(out, ignore_errors=True)
    absent = " 0 0 0" * keypoints
    for split in SPLITS:
        images, labels = out / "images" / split, out / "labels" / split
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for picture in sorted((export / "images" / split).iterdir()):
            _link(picture, images / picture.name)
            source = export / "labels" / split / f"{picture.stem}.txt"
            lines = source.read_text().splitlines() if source.is_file() else []
            agnostic = ["0 " + line.split(" ", 1)[1] + absent for line in lines if line.strip()]
            (labels / f"{picture.stem}.txt").write_text("".join(x + "\n" for x in agnostic))
    train: list[str] = [str(out / "images" / "train")]
    if replay is not None and (replay / "images" / "train").is_dir():
        train.append(str(replay / "images" / "train"))
    data: dict[str, object] = {
        "path": str(out),
        "train": train,
        "val": str(out / "images" / "val"),
        "names": {0: THING},
    }
    if keypoints:
        data["kpt_shape"] = [keypoints, 3]
        data["flip_idx"] = [1, 0, 3, 2] if keypoints == 4 else list(range(keypoints))
    file = out / "data.yaml"
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    return file


def _link(source: Path, target: Path) -> None:
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)
