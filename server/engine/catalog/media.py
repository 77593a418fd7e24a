"""Files the system keeps under ``<data_dir>/media``: references added while serving
(``references/``) and review items' pictures (``crops/``), named by content hash.

Storage stays bounded: a file goes when no row needs it any more, the pictures of items
a person decided on (or skipped) go after ``review.keep_days``, and ``collect`` also
removes files no row points at (left by a crash between writing a file and its row).
Files in the project's own reference folders are the user's and are never touched.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server import contract
from server.engine.catalog.store import Store

USAGE_TTL_S = 30.0
"""How long a measured disk use is reused before the folders are walked again."""
ORPHAN_MIN_AGE_S = 3600.0
"""A file no row points at is removed only once it is this old (seconds): a crash
between writing a file and its row leaves one, but a file being written now is not."""


@dataclass(frozen=True)
class Collected:
    """What one collection removed."""

    pictures_expired: int
    """Pictures of decided or skipped items past ``review.keep_days``."""
    orphans: int
    """Files no row pointed at."""
    bytes_freed: int

    def to_json(self) -> dict[str, int]:
        return {
            "pictures_expired": self.pictures_expired,
            "orphans": self.orphans,
            "bytes_freed": self.bytes_freed,
        }


class Media:
    """The media folder of one project (used from the engine thread only)."""

    def __init__(self, data_dir: Path, store: Store) -> None:
        self.root = data_dir / "media"
        self.store = store
        self._usage: tuple[float, contract.MediaUsage] | None = None

    def write(self, kind: str, digest: str, suffix: str, data: bytes) -> str:
        """Write ``media/<kind>/<digest[:2]>/<digest><suffix>`` atomically (once per
        content); returns its path."""
        path = self.root / kind / digest[:2] / f"{digest}{suffix}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return str(path)

    def owns(self, path: str) -> bool:
        """Whether ``path`` is one of this folder's files (not the user's)."""
        return bool(path) and Path(path).resolve().is_relative_to(self.root.resolve())

    def forget(self, path: str, image_id: int) -> int:
        """Delete a media file once no row other than ``image_id`` needs it; returns the
        bytes freed."""
        if not self.owns(path) or self.store.path_in_use(path, but=image_id):
            return 0
        return _unlink(Path(path))

    def collect(self, keep_days: float | None, now: datetime | None = None) -> Collected:
        """Expire the pictures of items decided or skipped more than ``keep_days`` ago
        (their rows, labels and scores stay, for stats and thresholds) and remove files
        no row points at. ``keep_days`` None keeps decided items' pictures."""
        freed = expired = 0
        if keep_days is not None:
            cutoff = ((now or datetime.now(UTC)) - timedelta(days=keep_days)).isoformat(
                timespec="seconds"
            )
            for image_id, paths in self.store.expired_pictures(cutoff):
                self.store.forget_picture(image_id)
                freed += sum(self.forget(path, image_id) for path in paths)
                expired += 1
        orphans = 0
        if self.root.is_dir():
            # Files are named by their content hash, so a name identifies a file even
            # when the data folder has moved since its path was stored.
            known = {Path(p).name for p in self.store.media_paths()}
            old_enough = time.time() - ORPHAN_MIN_AGE_S
            for file in self.root.rglob("*"):
                if (
                    file.is_file()
                    and file.name.lstrip(".").removesuffix(".tmp") not in known
                    and file.stat().st_mtime < old_enough
                ):
                    freed += _unlink(file)
                    orphans += 1
        self._usage = None
        return Collected(expired, orphans, freed)

    def usage(self) -> contract.MediaUsage:
        """Files and bytes per kind (``references``, ``crops``), measured at most every
        ``USAGE_TTL_S`` seconds (health is polled often; walking the folder is not free)."""
        now = time.monotonic()
        if self._usage is not None and now - self._usage[0] < USAGE_TTL_S:
            return self._usage[1]
        ref_files, ref_bytes = _tally(self.root / "references")
        crop_files, crop_bytes = _tally(self.root / "crops")
        out: contract.MediaUsage = {
            "references_files": ref_files,
            "references_bytes": ref_bytes,
            "crops_files": crop_files,
            "crops_bytes": crop_bytes,
        }
        self._usage = (now, out)
        return out


def _tally(folder: Path) -> tuple[int, int]:
    """Files under ``folder`` and their bytes (0, 0 when it does not exist)."""
    files = size = 0
    for file in folder.rglob("*") if folder.is_dir() else ():
        if file.is_file():
            files += 1
            size += file.stat().st_size
    return files, size


def _unlink(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size
