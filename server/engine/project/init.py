"""``identify init``: write a new project file."""

from __future__ import annotations

import os
from pathlib import Path

from server.engine.errors import ProjectConfigError
from server.engine.project.config import PROJECT_NAME_RE, load_project

TEMPLATE = """\
# identify project: {name}
# Reference folders: each image file is one class (file stem = label), each
# sub-folder is one class holding any number of images.
references:
  - path: {refs}
model:
  name: {model}
index:
  dtype: f16
detector:
  kind: {detector}   # {why}
# taxonomies:
#   - name: default
#     threshold: null   # null = use the value `identify verify` calibrated
#     margin: null
"""


def write_new_project(
    cwd: Path,
    name: str,
    refs: Path,
    model: str,
    force: bool = False,
    detector: tuple[str, str] = ("locate", "the window search finds one object a picture"),
) -> Path:
    """Create ``projects/<name>.yaml`` under ``cwd`` and return its path.

    Raises:
        ProjectConfigError: bad name, missing folder, or the file exists (without force).
    """
    if not PROJECT_NAME_RE.match(name):
        raise ProjectConfigError(
            f"project name {name!r} may hold only letters, digits, '_', '-', '.'"
        )
    refs_abs = (cwd / refs).resolve() if not refs.is_absolute() else refs
    if not refs_abs.is_dir():
        raise ProjectConfigError(f"reference folder not found: {refs_abs}")
    folder = cwd / "projects"
    path = folder / f"{name}.yaml"
    if path.exists() and not force:
        raise ProjectConfigError(f"{path} already exists (use --force to overwrite)")
    folder.mkdir(parents=True, exist_ok=True)
    rel = Path(os.path.relpath(refs_abs, folder))
    kind, why = detector
    text = TEMPLATE.format(name=name, refs=rel.as_posix(), model=model, detector=kind, why=why)
    path.write_text(text, encoding="utf-8")
    load_project(path)  # the file we wrote must load
    return path
