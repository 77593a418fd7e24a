"""A gathered dataset written as real clients take it, unchanged.

- ``yolo``: Ultralytics' layout, ``images/{train,val}/``, ``labels/{train,val}/`` (one
  ``class xc yc w h`` line per object, shares of the picture's size; an empty file for
  a background picture) and ``data.yaml`` (``path``, ``train``, ``val``, ``names``).
- ``coco``: ``images/{train,val}/`` and ``annotations/instances_{train,val}.json`` with
  ``images``, ``annotations`` (``bbox`` as ``[x, y, w, h]`` in pixels) and
  ``categories`` (ids from 1, in the class order).

Both write ``export.json`` beside (what was exported, from what, how many). The export
is written into a folder next to ``out`` and moved into place at the end, so a crash
leaves the previous export (or nothing), never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from server.engine.catalog.store import now_iso
from server.engine.errors import IdentifyError
from server.engine.training.dataset import Gathered, Picture

Format = Literal["yolo", "coco"]
FORMATS: tuple[Format, ...] = ("yolo", "coco")
MANIFEST = "export.json"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Written:
    """What an export holds."""

    out: Path
    format: Format
    pictures: dict[str, int]
    """Per split."""
    objects: dict[str, int]
    backgrounds: dict[str, int]
    """Pictures with no object (hard negatives), per split."""
    per_class: dict[str, int]
    classes: list[str]
    skipped: dict[str, int]


def write(
    gathered: Gathered,
    out: Path,
    fmt: Format,
    about: dict[str, Any],
    overwrite: bool = False,
    update: Callable[[int], None] = lambda n: None,
) -> Written:
    """Write ``gathered`` to ``out`` in ``fmt`` (``about``: what it was made from, kept in
    the manifest).

    Raises:
        IdentifyError: an unknown format, nothing to export, or ``out`` holding other
            files (or an earlier export, without ``overwrite``).
    """
    if fmt not in FORMATS:
        raise IdentifyError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    if not gathered.pictures:
        raise IdentifyError(
            "nothing to export: no annotation with a picture matches (review some items first)"
        )
    _check_target(out, overwrite)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        names = {
            p.key: f"{i:06d}{p.path.suffix.lower() or '.jpg'}"
            for i, p in enumerate(gathered.pictures)
        }
        for picture in gathered.pictures:
            target = partial / "images" / picture.split / names[picture.key]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(picture.path, target)
            update(1)
        if fmt == "yolo":
            _write_yolo(gathered, partial, names, out.resolve())
        else:
            _write_coco(gathered, partial, names)
        written = _summary(gathered, out, fmt)
        manifest = {
            "format": fmt,
            "created_at": now_iso(),
            **about,
            "classes": gathered.classes,
            "pictures": written.pictures,
            "objects": written.objects,
            "backgrounds": written.backgrounds,
            "per_class": written.per_class,
            "skipped": gathered.skipped,
            "split_by": "live track, else picture (a hash of its key: stable across exports)",
            "annotations": {p.split + "/" + names[p.key]: p.annotations for p in gathered.pictures},
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _move_into_place(partial, out)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)  # never half an export left behind
        raise IdentifyError(f"exporting to {out} failed: {exc}") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return written


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise IdentifyError(f"{out} is a file, not a folder to export into")
    entries = list(out.iterdir())
    if not entries:
        return
    if not (out / MANIFEST).is_file():
        raise IdentifyError(f"{out} holds other files; export into a new or empty folder")
    if not overwrite:
        raise IdentifyError(f"{out} holds an earlier export; --overwrite replaces it")


def _move_into_place(partial: Path, out: Path) -> None:
    """Swap the finished export in; the old one goes only once the new one is there."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(partial, out)
    shutil.rmtree(old, ignore_errors=True)


def _write_yolo(gathered: Gathered, root: Path, names: dict[str, str], final: Path) -> None:
    number = {c: i for i, c in enumerate(gathered.classes)}
    for split in SPLITS:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for p in gathered.pictures:
        lines = [
            f"{number[label]} {(x0 + x1) / 2 / p.width:.6f} {(y0 + y1) / 2 / p.height:.6f} "
            f"{(x1 - x0) / p.width:.6f} {(y1 - y0) / p.height:.6f}"
            for label, (x0, y0, x1, y1) in p.boxes
        ]
        label_file = root / "labels" / p.split / Path(names[p.key]).with_suffix(".txt").name
        label_file.write_text("".join(line + "\n" for line in lines))
    data = {
        "path": str(final),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(gathered.classes)),
    }
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _write_coco(gathered: Gathered, root: Path, names: dict[str, str]) -> None:
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [
        {"id": i + 1, "name": c, "supercategory": c.split(" > ")[0]}
        for i, c in enumerate(gathered.classes)
    ]
    number = {c: i + 1 for i, c in enumerate(gathered.classes)}
    for split in SPLITS:
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for p in (p for p in gathered.pictures if p.split == split):
            image_id = len(images) + 1
            images.append(
                {
                    "id": image_id,
                    "file_name": f"{split}/{names[p.key]}",
                    "width": p.width,
                    "height": p.height,
                }
            )
            for label, (x0, y0, x1, y1) in p.boxes:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": number[label],
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "area": (x1 - x0) * (y1 - y0),
                        "iscrowd": 0,
                    }
                )
        doc = {
            "info": {"description": "identify: reviewed annotations", "date_created": now_iso()},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))


def _summary(gathered: Gathered, out: Path, fmt: Format) -> Written:
    def per_split(count: Callable[[Picture], int]) -> dict[str, int]:
        return {s: sum(count(p) for p in gathered.pictures if p.split == s) for s in SPLITS}

    per_class = Counter(label for p in gathered.pictures for label, _ in p.boxes)
    return Written(
        out,
        fmt,
        per_split(lambda p: 1),
        per_split(lambda p: len(p.boxes)),
        per_split(lambda p: int(not p.boxes)),
        {c: per_class[c] for c in gathered.classes},
        gathered.classes,
        gathered.skipped,
    )
