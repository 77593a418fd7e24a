"""What a command can check about its project before it loads a model: in milliseconds
rather than after the tens of seconds a model takes, and before anything is written."""

from __future__ import annotations

from server.engine.errors import NotIndexedError, ProjectConfigError
from server.engine.project.config import Project
from server.engine.vision.embedders import check_model


def preflight(project: Project, *, references: bool = False, indexed: bool = False) -> None:
    """Check the model's name and files, and with ``references`` that every reference
    folder exists, with ``indexed`` that the project was indexed.

    Raises:
        ModelUnavailableError: unknown model name, missing checkpoint or head file.
        ProjectConfigError: a reference folder is missing.
        NotIndexedError: ``identify index`` never ran.
    """
    cfg = project.config
    check_model(cfg.model)
    if cfg.projection is not None and not cfg.projection.file.is_file():
        raise ProjectConfigError(
            f"the projection head {cfg.projection.file} is missing: restore it, or delete "
            "the projection: block and run identify index"
        )
    if references:
        for src in cfg.references:
            if not src.path.is_dir():
                raise ProjectConfigError(f"reference folder not found: {src.path}")
    if indexed and not project.db_path.exists():
        raise NotIndexedError(
            f"project '{project.name}' has no index yet: run `identify "
            f"index --project {project.file}` first"
        )
