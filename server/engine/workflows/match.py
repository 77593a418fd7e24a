"""``identify match``: identify image files: the things in each picture are found (by
the project's detector, or the one object by ``locate``) and identified; each one's box,
and its corners when the detector found them, are reported."""

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
from server.engine.decide.objects import decide, sight
from server.engine.errors import ImageRejected
from server.engine.project.config import Project
from server.engine.vision import detectors
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
    quads: list[np.ndarray | None] = field(default_factory=list)
    """Each decision's four corners, when the detector found them."""
    fell_back: bool = False
    """The detector found nothing, so the picture was located instead."""

    def to_json(self) -> dict[str, Any]:
        """One line of ``identify match --json``."""
        boxes = self.boxes or [None] * len(self.decisions)
        quads = self.quads or [None] * len(self.decisions)
        out: dict[str, Any] = {
            "path": str(self.path),
            "objects": [
                d.to_json(bbox=b, quad=q)
                for d, b, q in zip(self.decisions, boxes, quads, strict=True)
            ],
        }
        if self.fell_back:
            out["detector_found_nothing"] = True
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
    detector = detectors.make(project.config.detector, project.data_dir)
    ident = Identifier.open(project, embedder)

    def finish(item: _Loaded) -> FileResult:
        if item.image is None:
            return FileResult(item.path, error=item.error)
        sighting = sight(ident, detector, item.image)
        found = decide(ident, sighting)
        if record:
            for f in found:
                # A located object's observation is the whole file (its vector, the box
                # in the result); a detected thing's is its own crop.
                ev = (sighting.regions[0] if f.detection is None else f.region).evidence
                ident.store.record_observation(
                    path=str(item.path.resolve()),
                    content_hash=item.digest
                    if len(found) == 1
                    else f"{item.digest}:{f.region.box}",
                    width=item.image.shape[1],
                    height=item.image.shape[0],
                    model_id=embedder.spec.space_id,
                    embedding=ev.vector,
                    result=f.decision.to_json(bbox=f.region.box, quad=f.quad),
                )
        return FileResult(
            item.path,
            [f.decision for f in found],
            boxes=[f.region.box for f in found],
            quads=[f.quad for f in found],
            fell_back=sighting.fell_back,
        )

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
