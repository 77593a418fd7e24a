"""``identify export``: the reviewed data, as YOLO or COCO (``training.export``), read from
the project's database (a running server may keep writing it: reading beside it is
safe, and the export is of what had committed when it began)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path

from server.engine.catalog.store import Store
from server.engine.errors import IdentifyError, NotIndexedError
from server.engine.project.config import DEFAULT_TAXONOMY, Project
from server.engine.training.dataset import DEFAULT_VAL_SHARE, TYPES, gather
from server.engine.training.export import Format, Written, write
from server.engine.workflows.common import Stage, open_project, quiet


def when(value: str | None, name: str) -> str | None:
    """An ISO date or time as stored times compare (UTC, seconds); None stays None.

    Raises:
        IdentifyError: not an ISO date or time.
    """
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise IdentifyError(
            f"--{name} {value!r} is not an ISO date or time (2026-12-01, 2026-12-01T08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def export_dataset(
    ref: str,
    out: Path,
    fmt: Format,
    types: Collection[str] = TYPES,
    taxonomy: str | None = None,
    since: str | None = None,
    until: str | None = None,
    val_share: float = DEFAULT_VAL_SHARE,
    overwrite: bool = False,
    stage: Stage = quiet,
) -> tuple[Project, Written]:
    """Export the annotations of ``types`` (in ``taxonomy``, made in [since, until)).

    Raises:
        NotIndexedError: the project has no database yet.
        IdentifyError: an unknown taxonomy, type or format, a bad time, nothing to
            export, or an ``out`` holding other files (see ``training.export.write``).
    """
    project = open_project(ref)
    if not project.db_path.exists():
        raise NotIndexedError(f"{project.name} has no database yet (run identify index first)")
    known = {t.name for t in project.config.taxonomies} | {DEFAULT_TAXONOMY}
    if taxonomy is not None and taxonomy not in known:
        raise IdentifyError(
            f"no taxonomy {taxonomy!r} in {project.name} (there are: {', '.join(sorted(known))})"
        )
    start, end = when(since, "since"), when(until, "until")
    store = Store(project.db_path)
    try:
        gathered = gather(store, types, taxonomy, start, end, val_share)
    finally:
        store.close()
    about = {
        "project": project.name,
        "filters": {
            "types": sorted(set(types)),
            "taxonomy": taxonomy,
            "since": start,
            "until": end,
        },
        "val_share": val_share,
    }
    with stage("exporting", len(gathered.pictures)) as update:
        written = write(gathered, out, fmt, about, overwrite, update)
    return project, written
