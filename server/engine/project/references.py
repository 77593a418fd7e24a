"""Finding reference images on disk and naming them.

A reference folder holds image files (one class each; the file stem is the label) and
sub-folders (one class each; the folder name is the label, every image inside, at any
depth, is a reference of it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from server.engine.errors import NoReferencesError, ProjectConfigError
from server.engine.project.config import ProjectConfig
from server.engine.project.naming import label_from_name, with_prefix

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
"""File suffixes treated as images when scanning folders."""


@dataclass(frozen=True)
class ReferenceFile:
    """An image file on disk and the class it is a reference of."""

    path: Path
    label: str
    rarity: str | None
    taxonomy: str
    source: Path


def _images_under(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            yield p


def scan_references(cfg: ProjectConfig) -> tuple[list[ReferenceFile], list[tuple[Path, str]]]:
    """All reference files of a project, and the files skipped for not being images.

    Raises:
        ProjectConfigError: a reference folder does not exist.
        NoReferencesError: no image file in any reference folder.
    """
    found: list[ReferenceFile] = []
    skipped: list[tuple[Path, str]] = []
    for src in cfg.references:
        if not src.path.is_dir():
            raise ProjectConfigError(f"reference folder not found: {src.path}")
        for entry in sorted(src.path.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                parsed = label_from_name(entry.name, cfg.naming, is_file=False)
                files = list(_images_under(entry))
            else:
                parsed = label_from_name(entry.stem, cfg.naming, is_file=True)
                files = [entry]
            for f in files:
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    skipped.append((f, "not an image file type"))
                    continue
                found.append(
                    ReferenceFile(
                        path=f,
                        label=with_prefix(parsed.label, src.prefix),
                        rarity=parsed.rarity,
                        taxonomy=src.taxonomy,
                        source=src.path,
                    )
                )
    if not found:
        folders = ", ".join(str(s.path) for s in cfg.references)
        raise NoReferencesError(f"no reference images found in {folders}")
    return found, skipped
