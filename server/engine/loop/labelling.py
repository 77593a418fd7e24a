"""Bulk auto-labelling of folders: every object of every picture decided; an accepted
answer is its label (kept with its picture in a separate taxonomy, to be promoted), a
miss or an audited answer is queued. A file is marked labelled by its content in the
same transaction as its observations, so a second run (or one after a crash) decides
only what is new.

One home for ``identify label`` and the server's ``POST /api/label``; both build their
summary with ``summarise`` from the same per-file results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from server import contract
from server.engine.catalog.store import LabelledObject, Store
from server.engine.decide.identifier import Identifier
from server.engine.decide.objects import Sighting
from server.engine.decide.objects import decide as decide_objects
from server.engine.errors import IdentifyError, NotFoundError
from server.engine.loop.recording import Recorder
from server.engine.project.references import IMAGE_SUFFIXES

SOURCE = "label"
"""The review source of what a labelling run queues."""
MAX_LABEL_FILES = 200_000
"""Most files one run takes (a bigger collection is labelled folder by folder)."""
MAX_PATH_CHARS = 4096


def label_files(paths: Iterable[str]) -> list[Path]:
    """The image files under ``paths`` (files, or folders searched recursively; hidden
    files and folders left out), each once, in a stable order. Quick: reads no image.

    Raises:
        NotFoundError: a path that does not exist.
        IdentifyError: an unusable path, no image at all, or more than
            ``MAX_LABEL_FILES``.
    """
    out: dict[Path, None] = {}
    asked = list(paths)
    if not asked:
        raise IdentifyError("give at least one file or folder to label")
    for text in asked:
        if not isinstance(text, str) or not text or len(text) > MAX_PATH_CHARS or "\x00" in text:
            raise IdentifyError(f"not a usable path (at most {MAX_PATH_CHARS} characters, no NUL)")
        root = Path(text).expanduser()
        try:
            if root.is_file():
                out[root.resolve()] = None
            elif root.is_dir():
                for p in sorted(root.rglob("*")):
                    hidden = any(part.startswith(".") for part in p.relative_to(root).parts)
                    if not hidden and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                        out[p.resolve()] = None
                        if len(out) > MAX_LABEL_FILES:
                            break
            else:
                raise NotFoundError(f"no file or folder {text[:200]!r}")
        except OSError as exc:
            raise IdentifyError(f"cannot read {text[:200]!r}: {exc.strerror or exc}") from None
    if not out:
        raise IdentifyError(f"no image files in {', '.join(a[:200] for a in asked)}")
    if len(out) > MAX_LABEL_FILES:
        raise IdentifyError(f"more than {MAX_LABEL_FILES} files; label a folder at a time")
    return list(out)


def label_picture(
    ident: Identifier, recorder: Recorder, prepared: Sighting, digest: str, path: str
) -> list[int]:
    """Decide every object of a prepared picture and record each (see
    ``Recorder.found``), and mark the file labelled, in one transaction. Returns the
    observation ids (those counted on a waiting review item are left out)."""
    store: Store = recorder.store
    founds = decide_objects(ident, prepared)
    observations: list[int] = []
    queued = 0
    with store.transaction():
        for found in founds:
            ev = prepared.regions[0].evidence if found.detection is None else found.region.evidence
            review_id, observation_id = recorder.found(prepared.image, found, ev, SOURCE)
            queued += review_id is not None
            if observation_id:
                observations.append(observation_id)
        store.mark_labelled(digest, path, observations, queued)
    return observations


def object_json(row: LabelledObject) -> contract.LabelledObject:
    """One object of a labelled file, as the API and the export give it."""
    return {
        "observation_id": row.observation_id,
        "bbox": row.bbox,
        "label": row.label,
        "matched": row.matched,
        "score": round(row.score, 4),
        "margin": round(row.margin, 4),
        "taxonomy": row.taxonomy,
        "review_id": row.review_id,
        "status": row.status,
    }


def file_result(
    path: Path | str, store: Store, digest: str, already: bool
) -> contract.LabelledFile:
    """The result of one labelled file: its objects as they stand now."""
    return {
        "path": str(path),
        "ok": True,
        "already": already,
        "objects": [object_json(o) for o in store.labelled_objects([digest])],
    }


def summarise(results: Sequence[dict[str, Any]]) -> contract.LabelSummary:
    """What a run did, from its per-file results (``ok`` false: the file could not be
    read or decided, with its ``error``)."""
    classes: Counter[str] = Counter()
    objects = accepted = queued = already = 0
    errors: list[contract.LabelError] = []
    for r in results:
        if not r.get("ok"):
            error = r.get("error")
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            errors.append({"path": str(r.get("path", "")), "error": message})
            continue
        already += bool(r.get("already"))
        for obj in r.get("objects", []):
            objects += 1
            queued += obj.get("review_id") is not None
            if obj.get("matched"):
                accepted += 1
                classes[str(obj.get("label"))] += 1
    return {
        "pictures": len(results),
        "labelled": len(results) - already - len(errors),
        "already_labelled": already,
        "unreadable": len(errors),
        "objects": objects,
        "accepted": accepted,
        "coverage": round(accepted / objects, 4) if objects else 0.0,
        "queued": queued,
        "classes": dict(sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))),
        "errors": errors[:100],
    }
