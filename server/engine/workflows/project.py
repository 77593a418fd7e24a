"""The small commands about a project as a whole: ``init`` (a new project file), ``gc``
(the storage retention policy, now) and ``models`` (what a project may use)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from server.engine.catalog.media import Collected, Media
from server.engine.catalog.store import Store
from server.engine.errors import ImageRejected, NotIndexedError
from server.engine.project.config import ModelConfig, Project
from server.engine.project.init import write_new_project
from server.engine.project.references import IMAGE_SUFFIXES
from server.engine.vision import detectors
from server.engine.vision.embedders import check_model, default_model, list_models
from server.engine.vision.images import load_image
from server.engine.workflows.common import open_project, writer_lock

__all__ = ["collect_garbage", "list_models", "new_project"]

INIT_SAMPLE = 50
"""References ``identify init`` looks at to choose the detector."""


def new_project(
    cwd: Path,
    name: str,
    refs: Path,
    model: str | None = None,
    force: bool = False,
    note: Callable[[str], None] = lambda message: None,
) -> Path:
    """``identify init``: write ``projects/<name>.yaml`` under ``cwd`` for the reference
    folder ``refs``; without ``model``, the default one (``note`` says which and why).

    Raises:
        ModelUnavailableError: an unknown model name.
        ProjectConfigError: bad name, missing folder, or the file exists (without force).
    """
    if model is None:
        model, why = default_model()
        note(f"model {model}: {why}")
    else:
        check_model(ModelConfig(name=model))
    kind, reason = detectors.suggest(_sample_references(cwd / refs))
    note(f"detector {kind}: {reason}")
    return write_new_project(cwd, name, refs, model, force=force, detector=(kind, reason))


def _sample_references(folder: Path) -> list[np.ndarray]:
    """Up to ``INIT_SAMPLE`` of the folder's images, evenly spread (unreadable ones are
    left out: ``identify index`` reports them)."""
    if not folder.is_dir():
        return []
    files = [
        p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    step = max(1, len(files) // INIT_SAMPLE)
    out = []
    for path in files[::step][:INIT_SAMPLE]:
        try:
            out.append(load_image(path, keep_alpha=True))
        except ImageRejected:
            continue
    return out


def collect_garbage(ref: str) -> tuple[Project, Collected]:
    """``identify gc``: apply the retention policy (``review.keep_days``) and remove
    orphan media files, under the writer lock.

    Raises:
        NotIndexedError: the project has no database yet.
        ConflictError: another process holds the project (a running server).
    """
    project = open_project(ref)
    if not project.db_path.exists():
        raise NotIndexedError(f"{project.name} has no database yet (run identify index first)")
    with writer_lock(project, "identify gc"):
        store = Store(project.db_path)
        try:
            done = Media(project.data_dir, store).collect(project.config.review.keep_days)
        finally:
            store.close()
    return project, done
