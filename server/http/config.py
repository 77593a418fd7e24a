"""What ``identify serve`` was asked to run: one frozen object, built by the CLI or a
test, passed to ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass

from server.engine.config import CameraConfig, Project
from server.engine.errors import IdentifyError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class ServeConfig:
    """Server settings for one project."""

    project: Project
    """The loaded project."""
    host: str = "127.0.0.1"
    """Interface to bind."""
    port: int = 8765
    """TCP port."""
    token: str | None = None
    """Bearer token every request must carry; None means no authentication."""
    insecure_no_auth: bool = False
    """Allow a non-loopback host without a token (loudly)."""
    cameras: tuple[CameraConfig, ...] = ()
    """Server-side cameras to open."""
    workers: int | None = None
    """Images prepared at once (decode, embed); None: one per core, at most 4."""

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK_HOSTS and not self.token and not self.insecure_no_auth:
            raise IdentifyError(
                f"binding {self.host} exposes the server beyond this machine: pass --token "
                "(a long random string), or --insecure-no-auth if you really mean it")
        if self.token is not None and len(self.token) < 8:
            raise IdentifyError("--token must be at least 8 characters")
