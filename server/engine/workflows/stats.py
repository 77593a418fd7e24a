"""``identify stats``: what the annotations say, read from the project's database (a
running server may keep writing it: reading beside it is safe)."""

from __future__ import annotations

from datetime import UTC, datetime

from server import contract
from server.engine.catalog.store import Store
from server.engine.errors import NotIndexedError
from server.engine.loop import report
from server.engine.project.config import Project
from server.engine.workflows.common import open_project


def review_stats(
    ref: str, label: str | None = None, depth: int | None = None
) -> tuple[Project, contract.Stats]:
    """The statistics of ``GET /api/stats``, with the reviewed accuracy beside
    ``verify``'s prediction.

    Raises:
        NotIndexedError: the project has no database yet.
    """
    project = open_project(ref)
    if not project.db_path.exists():
        raise NotIndexedError(f"{project.name} has no database yet (run identify index first)")
    calibration = project.config.calibration
    predicted = None if calibration is None else calibration.predicted_open_set_accuracy
    store = Store(project.db_path)
    try:
        return project, report.stats(store, label, depth, datetime.now(UTC), predicted)
    finally:
        store.close()
