"""One writer per project: the running server holds a lock on the project's data folder,
and the commands that write (index, verify, match) take it briefly or say who has it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from server.engine.errors import ConflictError

LOCK_NAME = ".writer.lock"


def holder(data_dir: Path) -> str | None:
    """Who holds the project's lock now (what it wrote: ``identify serve on URL (pid
    N)``...), or None when nobody does."""
    path = data_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class ProjectLock:
    """An exclusive, non-blocking ``flock`` on ``<data_dir>/.writer.lock``.

    The kernel releases it when the process dies, so a crash never leaves the project
    locked.
    """

    def __init__(self, data_dir: Path, holder: str) -> None:
        self.path = data_dir / LOCK_NAME
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> Self:
        """Take the lock.

        Raises:
            ConflictError: another process (or server) holds it; says which.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise ConflictError(
                f"{who} is using this project's database and index; stop it first, or go "
                "through the server's API"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.holder} (pid {os.getpid()})".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let go (idempotent)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
