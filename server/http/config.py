"""What ``identify serve`` was asked to run: one frozen object, built by the CLI or a
test, passed to ``create_app``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from server.engine.errors import IdentifyError
from server.engine.project.config import CameraConfig, Project

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
"""Bind addresses meaning every interface."""


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
    allow_hosts: tuple[str, ...] = ()
    """Further names this server answers to in the ``Host`` header (a name in DNS or
    ``/etc/hosts`` that points at it); every other name is refused, against DNS
    rebinding."""

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK_HOSTS and not self.token and not self.insecure_no_auth:
            raise IdentifyError(
                f"binding {self.host} exposes the server beyond this machine: pass --token "
                "(a long random string), or --insecure-no-auth if you really mean it"
            )
        if self.token is not None and len(self.token) < 8:
            raise IdentifyError("--token must be at least 8 characters")
        for name in self.allow_hosts:
            if not name or any(c in name for c in "/:@ ") and not _is_ip(name):
                raise IdentifyError(f"--allow-host takes a host name, not {name!r}")

    def serves_host(self, hostname: str) -> bool:
        """Whether a request addressed to ``hostname`` (the ``Host`` header without its
        port) is meant for this server.

        Its bind address, the loopback names, and ``allow_hosts``; when bound to every
        interface, any IP address too (an address cannot be rebound: only a name can).
        """
        name = hostname.lower().rstrip(".")
        if name in LOOPBACK_HOSTS or name == self.host.lower():
            return True
        if name in (h.lower().rstrip(".") for h in self.allow_hosts):
            return True
        return self.host in WILDCARD_HOSTS and _is_ip(name)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
