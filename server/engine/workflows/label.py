"""``identify label``: auto-label folders of pictures with no server running (see
``loop.labelling``); while a server holds the project, the CLI sends the same work to
its ``POST /api/label`` instead (``common.serving_url`` says where)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from server import contract
from server.engine.catalog.media import Media
from server.engine.decide.identifier import Identifier
from server.engine.decide.objects import sight
from server.engine.errors import IdentifyError, ImageRejected, NotIndexedError
from server.engine.loop.labelling import file_result, label_files, label_picture, summarise
from server.engine.loop.recording import Recorder
from server.engine.project.config import Project
from server.engine.vision import detectors
from server.engine.vision.embedders import project_embedder
from server.engine.vision.images import (
    MAX_WORK_SIDE,
    WORK_MIN_SIDE,
    content_hash,
    decode_image,
    flatten_alpha,
    read_image_bytes,
)
from server.engine.vision.pipeline_io import DECODE_WORKERS, bounded_map
from server.engine.workflows.common import Stage, open_project, quiet, writer_lock

EXPORT_COLUMNS = (
    "path",
    "observation_id",
    "x0",
    "y0",
    "x1",
    "y1",
    "label",
    "matched",
    "score",
    "margin",
    "taxonomy",
    "status",
    "review_id",
)
"""The export's columns (CSV header; JSON Lines objects carry the same keys)."""


@dataclass
class Labelled:
    """What a run did: one result per file, in order (``summary_of`` adds them up)."""

    project: Project
    results: list[dict[str, Any]] = field(default_factory=list)


def summary_of(results: Sequence[dict[str, Any]]) -> contract.LabelSummary:
    """The summary of a run's per-file results (a local run's, or a server job's)."""
    return summarise(results)


@dataclass
class _Read:
    path: Path
    digest: str = ""
    data: bytes = b""
    error: str | None = None


def label(
    ref: str,
    paths: Sequence[str],
    stage: Stage = quiet,
) -> Labelled:
    """Label every image file under ``paths`` (see ``loop.labelling``) under the writer
    lock; a file labelled before (by content) is not decided again. Files are read and
    hashed on a small thread pool, ahead of the model.

    Raises:
        NotFoundError, IdentifyError: see ``loop.labelling.label_files``.
        NotIndexedError, IndexMismatchError: before any file is read.
        ConflictError: a server (or another command) holds the project.
    """
    project = open_project(ref)
    files = label_files(paths)
    if not project.db_path.exists():
        raise NotIndexedError(f"{project.name} has no database yet (run identify index first)")
    out = Labelled(project)
    embedder = project_embedder(project.config)
    with writer_lock(project, "identify label"):
        ident = Identifier.open(project, embedder)
        store = ident.store
        try:
            recorder = Recorder(
                project, embedder.spec.space_id, store, ident, Media(project.data_dir, store)
            )
            detector = detectors.make(project.config.detector, project.data_dir)
            done = store.labelled_hashes()
            with (
                ThreadPoolExecutor(DECODE_WORKERS, thread_name_prefix="read") as pool,
                stage("label", len(files)) as advance,
            ):
                for item in bounded_map(pool, _read, files, window=2 * DECODE_WORKERS):
                    out.results.append(_one(item, done, ident, recorder, detector))
                    advance(1)
        finally:
            ident.close()
    return out


def _read(path: Path) -> _Read:
    try:
        data = read_image_bytes(path)
    except ImageRejected as exc:
        return _Read(path, error=exc.message)
    return _Read(path, content_hash(data), data)


def _one(
    item: _Read,
    done: set[str],
    ident: Identifier,
    recorder: Recorder,
    detector: detectors.Detector | None,
) -> dict[str, Any]:
    """One file's result: decided and recorded, or found labelled before."""
    if item.error is not None:
        return _failed(item.path, item.error)
    if item.digest in done:
        return dict(file_result(item.path, recorder.store, item.digest, already=True))
    try:
        image = decode_image(
            item.data, item.path.name, min_side=WORK_MIN_SIDE, max_side=MAX_WORK_SIDE
        )
        prepared = sight(ident, detector, flatten_alpha(image))
        label_picture(ident, recorder, prepared, item.digest, str(item.path))
    except ImageRejected as exc:
        return _failed(item.path, exc.message)
    done.add(item.digest)
    return dict(file_result(item.path, recorder.store, item.digest, already=False))


def _failed(path: Path, why: str) -> dict[str, Any]:
    return {"path": str(path), "ok": False, "error": {"code": "bad_image", "message": why}}


def export_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every object of the files read, one row each (``EXPORT_COLUMNS``)."""
    rows = []
    for r in results:
        for obj in r.get("objects", []) if r.get("ok") else []:
            box = obj.get("bbox") or [None] * 4
            rows.append(
                {
                    "path": r["path"],
                    "observation_id": obj["observation_id"],
                    "x0": box[0],
                    "y0": box[1],
                    "x1": box[2],
                    "y1": box[3],
                    "label": obj["label"],
                    "matched": obj["matched"],
                    "score": obj["score"],
                    "margin": obj["margin"],
                    "taxonomy": obj["taxonomy"],
                    "status": obj["status"],
                    "review_id": obj["review_id"],
                }
            )
    return rows


def write_export(results: Sequence[dict[str, Any]], path: Path) -> int:
    """Write the labels as CSV (``.csv``) or JSON Lines (``.jsonl``); returns the rows.

    Raises:
        IdentifyError: another suffix, or a file that cannot be written.
    """
    writers: dict[str, Callable[[IO[str], list[dict[str, Any]]], None]] = {
        ".csv": _csv,
        ".jsonl": _jsonl,
    }
    write = writers.get(path.suffix.lower())
    if write is None:
        raise IdentifyError(f"export to a .csv or .jsonl file, not {path.name!r}")
    rows = export_rows(results)
    try:
        tmp = path.with_name(path.name + ".part")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            write(fh, rows)
        tmp.replace(path)
    except OSError as exc:
        raise IdentifyError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(rows)


def _csv(fh: IO[str], rows: list[dict[str, Any]]) -> None:
    writer = csv.DictWriter(fh, EXPORT_COLUMNS)
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def _jsonl(fh: IO[str], rows: list[dict[str, Any]]) -> None:
    for row in rows:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
