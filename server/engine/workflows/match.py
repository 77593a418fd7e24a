"""``identify match``: identify image files: the object is located in each picture
(``locate``) and identified; its box is reported."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.decide.decision import Decision
from server.engine.decide.identifier import Identifier
from server.engine.errors import ImageRejected
from server.engine.project.config import Project
from server.engine.vision.embedders import Embedder
from server.engine.vision.images import content_hash, decode_image, read_image_bytes
from server.engine.vision.locate import Box
from server.engine.vision.pipeline_io import DECODE_WORKERS, bounded_map


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
