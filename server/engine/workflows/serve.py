"""What ``identify serve`` and ``identify tui`` need of a project before the server (or
the client) starts: the project checked, its cameras, and its address."""

from __future__ import annotations

from collections.abc import Sequence

from server.engine.project.config import CameraConfig, Project
from server.engine.workflows.common import open_project
from server.engine.workflows.preflight import preflight


def project_to_serve(ref: str) -> Project:
    """The project named ``ref``, loaded (``ready_to_serve`` checks it).

    Raises:
        ProjectConfigError: no such project, or a file that does not validate.
    """
    return open_project(ref)


def ready_to_serve(project: Project) -> None:
    """Check the project as far as it can be before its model loads.

    Raises:
        ProjectConfigError, ModelUnavailableError, NotIndexedError: see ``preflight``.
    """
    preflight(project, indexed=True)


def cameras(project: Project, extra: Sequence[str]) -> tuple[CameraConfig, ...]:
    """The project's cameras, and one more per ``--camera`` source."""
    return project.config.server.cameras + tuple(CameraConfig(source=c) for c in extra)


def server_url(ref: str) -> str:
    """The address a client reaches the project's server on (its host and port; a
    wildcard host is reached on loopback)."""
    server = open_project(ref).config.server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::") else server.host
    return f"http://{host}:{server.port}"
