"""``identify match``: identify image files: the object is located in each picture
(``locate``) and identified; its box is reported."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from server.engine.decide.decision import Decision, resolve_thresholds
from server.engine.decide.identifier import Identifier
from server.engine.errors import ImageRejected
from server.engine.project.config import Project
from server.engine.vision.embedders import Embedder, project_embedder
from server.engine.vision.images import content_hash, decode_image, read_image_bytes
from server.engine.vision.locate import Box
from server.engine.vision.pipeline_io import DECODE_WORKERS, bounded_map
from server.engine.workflows.common import open_project, writer_lock
from server.engine.workflows.preflight import preflight


@dataclass
class FileResult:
    """The objects found in one file, or why it could not be read."""

    path: Path
    decisions: list[Decision] = field(default_factory=list)
    error: str | None = None
    boxes: list[Box | None] = field(default_factory=list)
    """Each decision's box in the picture (None: the whole picture)."""

    def to_json(self) -> dict[str, Any]:
        """One line of ``identify match --json``."""
        boxes = self.boxes or [None] * len(self.decisions)
        out: dict[str, Any] = {
            "path": str(self.path),
            "objects": [
                d.to_json(bbox=list(b) if b is not None else None)
                for d, b in zip(self.decisions, boxes, strict=True)
            ],
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class _Loaded:
    path: Path
    image: np.ndarray | None = None
    digest: str = ""
    error: str | None = None


def _load(path: Path) -> _Loaded:
    try:
        data = read_image_bytes(path)
        return _Loaded(path, decode_image(data, path.name), content_hash(data))
    except ImageRejected as exc:
        return _Loaded(path, error=exc.message)


def match_files(
    project: Project, embedder: Embedder, paths: Sequence[Path], record: bool = True
) -> Iterator[FileResult]:
    """Identify each file in order; unreadable files yield a result with ``error``.

    Files are decoded on a small thread pool, ahead of the model; results come back
    in input order.

    Raises:
        NotIndexedError, IndexMismatchError: before any file is read.
    """
    ident = Identifier.open(project, embedder)

    def finish(item: _Loaded) -> FileResult:
        if item.image is None:
            return FileResult(item.path, error=item.error)
        regions = ident.regions(item.image)
        decision, region = ident.decide_regions(regions)
        if record:
            # The observation is the whole file: its vector, the located box in the result.
            ident.store.record_observation(
                path=str(item.path.resolve()),
                content_hash=item.digest,
                width=item.image.shape[1],
                height=item.image.shape[0],
                model_id=embedder.spec.space_id,
                embedding=regions[0].evidence.vector,
                result=decision.to_json(bbox=region.box),
            )
        return FileResult(item.path, [decision], boxes=[region.box])

    try:
        with ThreadPoolExecutor(DECODE_WORKERS, thread_name_prefix="decode") as pool:
            for item in bounded_map(pool, _load, paths, window=2 * DECODE_WORKERS):
                yield finish(item)  # input order, errors included
    finally:
        ident.close()


@dataclass
class MatchRun:
    """A project ready to match files: loaded, checked, its model loaded. Used as a
    context manager, it holds the writer lock while results are recorded."""

    project: Project
    embedder: Embedder
    record: bool = True
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> Self:
        if self.record:
            self._stack.enter_context(writer_lock(self.project, "identify match"))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def results(self, paths: Sequence[Path]) -> Iterator[FileResult]:
        """``match_files`` over ``paths``, in order."""
        return match_files(self.project, self.embedder, paths, record=self.record)


def match_project(
    ref: str, record: bool = True, note: Callable[[str], None] = lambda message: None
) -> MatchRun:
    """``identify match``: load and check the project and its model, and say through
    ``note`` when it is not calibrated for that model; the run matches the files.

    Raises:
        ProjectConfigError, ModelUnavailableError, NotIndexedError: see ``preflight``.
    """
    project = open_project(ref)
    preflight(project, indexed=True)
    embedder = project_embedder(project.config)
    thresholds = resolve_thresholds(project.config, embedder.spec)
    if not thresholds.calibrated:
        threshold, margin = thresholds.default
        note(
            f"{project.name} is not calibrated for {embedder.spec.space_id}; using the "
            f"model's default threshold {threshold:.2f} and margin {margin:.2f} (run "
            "identify verify)"
        )
    return MatchRun(project, embedder, record)
