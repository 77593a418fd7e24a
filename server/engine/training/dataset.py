"""Reviewed data as a detection dataset: each stored picture with the boxes people
confirmed, corrected or drew, split into train and val by where it came from.

- ``confirmed``, ``corrected`` and ``missed`` annotations are objects, each with its true
  class; one with no class (an "unknown" confirmed, a correction to "none of these") is
  still a thing that is there, of the class ``unknown``.
- A ``false_positive`` marks a box with nothing of interest in it: it adds no object,
  and a picture with nothing else is kept as a background picture (a hard negative).
- Several objects of one picture (one frame, several detections) are one picture with
  several boxes: the stored picture of each is the same file.
- The split is by *group*, never by object: a picture, or all the pictures of one live
  track (a camera's frames of one thing differ by a few pixels), go to one side. A
  group's side is decided by a hash of its key, so a picture stays on its side in every
  later export (a model trained on an old export is never measured on its own data).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from server.engine.catalog.store import Store, TrainingRow
from server.engine.errors import IdentifyError

OBJECT_TYPES = ("confirmed", "corrected", "missed")
TYPES = (*OBJECT_TYPES, "false_positive")
UNKNOWN_CLASS = "unknown"
"""The class of an object nobody could name."""
DEFAULT_VAL_SHARE = 0.2


@dataclass
class Picture:
    """One stored picture and its objects."""

    key: str
    """Its file's content hash."""
    path: Path
    width: int
    height: int
    group: str
    """What decides its split: its live track, else the picture itself."""
    boxes: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)
    """(class, (x0, y0, x1, y1)) in its pixels."""
    annotations: list[int] = field(default_factory=list)
    split: str = "train"


@dataclass(frozen=True)
class Gathered:
    """What an export is made of."""

    pictures: list[Picture]
    classes: list[str]
    """Every class ever annotated, numbered by position (0-based), in the order each
    was first annotated."""
    skipped: dict[str, int]
    """Annotations left out, by why."""


def split_of(group: str, val_share: float) -> str:
    """``val`` for a share ``val_share`` of groups, by a hash of the group's key."""
    digest = hashlib.sha256(group.encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_share else "train"


def gather(
    store: Store,
    types: Collection[str] = TYPES,
    taxonomy: str | None = None,
    since: str | None = None,
    until: str | None = None,
    val_share: float = DEFAULT_VAL_SHARE,
) -> Gathered:
    """The pictures chosen by the filters (``_chosen``), with every box reviewed on
    each (see the module docstring), split.

    Raises:
        IdentifyError: an unknown type or a share outside [0, 1).
    """
    wrong = sorted(set(types) - set(TYPES))
    if wrong or not types:
        raise IdentifyError(f"annotation types must be among {', '.join(TYPES)}, not {wrong}")
    if not 0 <= val_share < 1:
        raise IdentifyError(f"the val share must be at least 0 and under 1, not {val_share}")
    by_picture: dict[str, list[TrainingRow]] = {}
    for row in store.training_rows(TYPES):
        by_picture.setdefault(row.content_hash, []).append(row)
    pictures: dict[str, Picture] = {}
    skipped: dict[str, int] = {}
    for rows in by_picture.values():
        if not _chosen(rows, types, taxonomy, since, until):
            continue
        for row in rows:
            why = _add(pictures, row)
            if why:
                skipped[why] = skipped.get(why, 0) + 1
    ordered = list(pictures.values())
    for picture in ordered:
        picture.split = split_of(picture.group, val_share)
    _keep_both_sides(ordered, val_share)
    # Every class ever annotated, exported or not: the numbers are the same in every
    # export, whatever its filters.
    classes = store.annotated_classes(UNKNOWN_CLASS)
    return Gathered(ordered, classes, skipped)


def _chosen(
    rows: list[TrainingRow],
    types: Collection[str],
    taxonomy: str | None,
    since: str | None,
    until: str | None,
) -> bool:
    """Whether the filters take a picture. They choose pictures, not boxes: a picture
    goes with every box reviewed on it (an object left out would be taught as
    background), when one of its annotations is of ``types`` (in ``taxonomy``) and its
    first annotation was made in [since, until)."""
    first = min(r.created_at for r in rows)
    if (since is not None and first < since) or (until is not None and first >= until):
        return False
    return any(r.type in types and (taxonomy is None or r.taxonomy == taxonomy) for r in rows)


def _add(pictures: dict[str, Picture], row: TrainingRow) -> str | None:
    """Add one annotation to its picture; why it was left out, if it was."""
    path = Path(row.path) if row.path else None
    if path is None or not path.is_file():
        return "picture gone (review.keep_days)"
    picture = pictures.get(row.content_hash)
    if picture is None:
        size = _size(path)
        if size is None:
            return "picture unreadable"
        group = (
            f"track:{row.source}:{row.track_id}" if row.track_id else f"picture:{row.content_hash}"
        )
        picture = Picture(row.content_hash, path, size[0], size[1], group)
        pictures[row.content_hash] = picture
    picture.annotations.append(row.annotation_id)
    if row.type == "false_positive":
        return None
    box = _clipped(row.box, picture.width, picture.height)
    if box is None:
        return "box empty or outside the picture"
    picture.boxes.append((row.label or UNKNOWN_CLASS, box))
    return None


def _size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError):
        return None


def _clipped(box: list[int] | None, w: int, h: int) -> tuple[int, int, int, int] | None:
    """A box within the picture (None: the whole of it), or None when nothing is left."""
    if box is None:
        return 0, 0, w, h
    x0, y0 = max(0, min(box[0], box[2])), max(0, min(box[1], box[3]))
    x1, y1 = min(w, max(box[0], box[2])), min(h, max(box[1], box[3]))
    return (x0, y0, x1, y1) if x1 - x0 >= 2 and y1 - y0 >= 2 else None


def _keep_both_sides(pictures: list[Picture], val_share: float) -> None:
    """With two groups or more and a val share, neither side is left empty: the group
    nearest the line moves (still decided by the hash, so it stays put while the data
    grows, until the hash puts another on that side)."""
    groups = sorted({p.group for p in pictures})
    if len(groups) < 2 or val_share <= 0:
        return
    sides = {p.group: p.split for p in pictures}
    for empty in ("val", "train"):
        if empty in sides.values():
            continue

        def distance(group: str) -> float:
            digest = hashlib.sha256(group.encode()).digest()
            return abs(int.from_bytes(digest[:8], "big") / 2**64 - val_share)

        move = min(groups, key=distance)
        for p in pictures:
            if p.group == move:
                p.split = empty
        sides[move] = empty
