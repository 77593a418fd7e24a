"""The project file: typed, frozen, validated once on load and passed down explicitly.

A project is one YAML file (``projects/<name>.yaml`` or any path). Relative paths in it
resolve against the file's folder. Unknown keys and wrong types are reported with the
file, the line and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from server.engine.errors import ProjectConfigError
from server.engine.project.outreach import AlertsConfig, ClustersConfig, WebhookConfig
from server.engine.project.runners import DetectorConfig, DetectorKind, ModelConfig
from server.engine.project.sections import (
    DEFAULT_RARITY_SUFFIXES,
    DEFAULT_TAXONOMY,
    PROJECT_NAME_RE,
    CameraConfig,
    ClassThreshold,
    IndexConfig,
    LocateConfig,
    NamingRules,
    Projection,
    ReferenceSource,
    RerankConfig,
    ReviewConfig,
    ServerConfig,
    Taxonomy,
    TrainConfig,
    VerifyConfig,
)
from server.engine.project.yamlschema import load_yaml_as

__all__ = [
    "DEFAULT_RARITY_SUFFIXES",
    "DEFAULT_TAXONOMY",
    "PROJECT_NAME_RE",
    "Calibration",
    "CameraConfig",
    "ClassThreshold",
    "DetectorConfig",
    "DetectorKind",
    "IndexConfig",
    "LocateConfig",
    "ModelConfig",
    "NamingRules",
    "Project",
    "ProjectConfig",
    "Projection",
    "ReferenceSource",
    "RerankConfig",
    "ReviewConfig",
    "ServerConfig",
    "Taxonomy",
    "TrainConfig",
    "VerifyConfig",
    "default_data_dir",
    "load_project",
    "remove_block",
    "resolve_project_path",
    "write_block",
    "write_calibration",
    "write_projection",
]


@dataclass(frozen=True)
class Calibration:
    """Thresholds recommended by ``identify verify``; written back into the project."""

    threshold: float
    """Score threshold."""
    margin: float
    """Margin threshold."""
    model: str = ""
    """Model id the calibration is valid for; ignored when the model changed."""
    predicted_open_set_accuracy: float | None = None
    """Open-set accuracy predicted by verify at these thresholds."""
    picture_threshold: float | None = None
    """Score threshold for whole pictures (located first); None: the crops' one."""
    picture_margin: float | None = None
    """Margin threshold for whole pictures; None: the crops' one."""
    picture_predicted_open_set_accuracy: float | None = None
    """Open-set accuracy predicted by verify for whole pictures at their thresholds."""
    verified_at: str = ""
    """ISO time of the verify run."""


@dataclass(frozen=True)
class ProjectConfig:
    """Everything in a project file."""

    references: tuple[ReferenceSource, ...]
    """Reference folders."""
    name: str | None = None
    """Project name; defaults to the file's stem."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The embedder."""
    index: IndexConfig = field(default_factory=IndexConfig)
    """The vector index."""
    naming: NamingRules = field(default_factory=NamingRules)
    """Label naming rules."""
    data_dir: Path | None = None
    """Where the index, database and crops live; default ``indexes/<name>/``."""
    taxonomies: tuple[Taxonomy, ...] = ()
    """Threshold groups; a ``default`` taxonomy always exists."""
    rerank: RerankConfig = field(default_factory=RerankConfig)
    """The local-feature second stage."""
    locate: LocateConfig = field(default_factory=LocateConfig)
    """Finding the object in whole pictures."""
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    """Finding the things in whole pictures (several per picture)."""
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    """Self-test settings."""
    review: ReviewConfig = field(default_factory=ReviewConfig)
    """The review queue's quality gate and live-video tracking."""
    server: ServerConfig = field(default_factory=ServerConfig)
    """``identify serve`` defaults."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """``identify train`` settings."""
    webhooks: tuple[WebhookConfig, ...] = ()
    """Receivers of the project's events (see the README, Webhooks)."""
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    """When to raise an alert (an event, and a banner in the TUI)."""
    clusters: ClustersConfig = field(default_factory=ClustersConfig)
    """Grouping the pending unknowns into clusters."""
    projection: Projection | None = None
    """Written by ``identify train``: the projection head applied after the model."""
    calibration: Calibration | None = None
    """Written by ``identify verify``; do not edit by hand unless you mean it."""

    def __post_init__(self) -> None:
        if not self.references:
            raise ValueError("'references' must list at least one folder")
        names = [t.name for t in self.taxonomies]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"taxonomy names must be unique: {', '.join(sorted(dupes))}")
        known = set(names) | {DEFAULT_TAXONOMY}
        for ref in self.references:
            if ref.taxonomy not in known:
                raise ValueError(
                    f"references: taxonomy '{ref.taxonomy}' is not declared under 'taxonomies'"
                )
        hooks = [w.name for w in self.webhooks]
        if len(set(hooks)) != len(hooks):
            raise ValueError("webhook names must be unique")

    def taxonomy(self, name: str) -> Taxonomy:
        """The taxonomy called ``name`` (``default`` exists even when not declared)."""
        for t in self.taxonomies:
            if t.name == name:
                return t
        return Taxonomy(name=name)


@dataclass(frozen=True)
class Project:
    """A loaded project: its file, its resolved paths and its configuration."""

    file: Path
    """The YAML file it was loaded from."""
    name: str
    """Project name."""
    data_dir: Path
    """Resolved folder for the index, database and crops."""
    config: ProjectConfig
    """The validated configuration with every path made absolute."""

    @property
    def db_path(self) -> Path:
        """The SQLite database."""
        return self.data_dir / "identify.db"

    @property
    def index_path(self) -> Path:
        """The USearch index file (its metadata sits beside it)."""
        return self.data_dir / "index.usearch"


def resolve_project_path(project: str | Path, cwd: Path | None = None) -> Path:
    """Find a project file: a path to a YAML file, or a name under ``./projects/``."""
    cwd = cwd or Path.cwd()
    candidate = Path(project).expanduser()
    path = candidate if candidate.is_absolute() else cwd / candidate
    if candidate.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ProjectConfigError(f"project file not found: {path}")
        return path
    for ext in (".yaml", ".yml"):
        path = cwd / "projects" / f"{project}{ext}"
        if path.is_file():
            return path
    folder = cwd / "projects"
    names = (
        sorted({p.stem for ext in ("*.yaml", "*.yml") for p in folder.glob(ext)})
        if folder.is_dir()
        else []
    )
    close = difflib.get_close_matches(str(project), names, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ProjectConfigError(
        f"no project '{project}': {hint}looked for projects/{project}.yaml under {cwd}; "
        "pass a path to a YAML file or create one with `identify init`"
    )


def default_data_dir(file: Path, name: str) -> Path:
    """``indexes/<name>/`` beside ``projects/`` (or beside the file if it is elsewhere)."""
    folder = file.parent
    root = folder.parent if folder.name == "projects" else folder
    return root / "indexes" / name


def load_project(project: str | Path, cwd: Path | None = None) -> Project:
    """Load and validate a project by name or path.

    Raises:
        ProjectConfigError: the file is missing, not YAML, or has a wrong key or type.
    """
    file = resolve_project_path(project, cwd).resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectConfigError(f"cannot read project file {file}: {exc}") from None
    cfg = load_yaml_as(ProjectConfig, text, str(file))
    name = cfg.name or file.stem
    if not PROJECT_NAME_RE.match(name):
        raise ProjectConfigError(
            f"{file}: project name {name!r} may hold only letters, digits, '_', '-', '.'"
        )
    base = file.parent

    def absolute(p: Path) -> Path:
        p = p.expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    cfg = dataclasses.replace(
        cfg,
        references=tuple(dataclasses.replace(r, path=absolute(r.path)) for r in cfg.references),
        model=dataclasses.replace(
            cfg.model,
            checkpoint=absolute(cfg.model.checkpoint) if cfg.model.checkpoint else None,
        ),
        detector=dataclasses.replace(
            cfg.detector,
            weights=absolute(cfg.detector.weights) if cfg.detector.weights else None,
        ),
        verify=dataclasses.replace(
            cfg.verify,
            backgrounds=absolute(cfg.verify.backgrounds) if cfg.verify.backgrounds else None,
        ),
        projection=(
            dataclasses.replace(cfg.projection, file=absolute(cfg.projection.file))
            if cfg.projection
            else None
        ),
    )
    data_dir = absolute(cfg.data_dir) if cfg.data_dir else default_data_dir(file, name)
    return Project(file=file, name=name, data_dir=data_dir, config=cfg)


def write_calibration(file: Path, calibration: Calibration) -> None:
    """Replace (or append) the top-level ``calibration:`` block of a project file."""
    write_block(file, "calibration", dataclasses.asdict(calibration), "identify verify")


def write_projection(file: Path, projection: Projection) -> None:
    """Replace (or append) the top-level ``projection:`` block of a project file; the
    head's path is written relative to the file's folder, so the two can move together."""
    payload = dataclasses.asdict(projection)
    payload["file"] = os.path.relpath(projection.file.resolve(), file.resolve().parent)
    write_block(file, "projection", payload, "identify train")


def remove_block(file: Path, key: str) -> None:
    """Remove one top-level block of a project file (if there is one), as ``write_block``
    rewrites one: the rest kept as it is, atomically, never leaving a file that would not
    load."""
    text = file.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.match(rf"^{key}\s*:", ln)), None)
    if start is None:
        return
    end = _block_end(lines, start)
    new_text = "".join(lines[:start] + lines[end:])
    load_yaml_as(ProjectConfig, new_text, str(file))
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    tmp.replace(file)


def _block_end(lines: list[str], start: int) -> int:
    """The line after the block that starts at ``start`` (a trailing comment that belongs
    to the next top-level key stays with it)."""
    end = start + 1
    while end < len(lines) and (lines[end][:1] in (" ", "\t", "\n", "#") or not lines[end].strip()):
        end += 1
    while end > start + 1 and lines[end - 1].startswith("#"):
        end -= 1
    return end


def write_block(file: Path, key: str, payload: dict[str, Any], writer: str) -> None:
    """Replace (or append) one top-level block of a project file.

    Only that block is rewritten, so the user's comments and layout elsewhere survive.
    The write is atomic (temporary file, then rename), and a file that would not load
    is never written.
    """
    text = file.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.match(rf"^{key}\s*:", ln)), None)
    if start is not None:
        del lines[start : _block_end(lines, start)]
    else:
        start = len(lines)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
    payload = {k: v for k, v in payload.items() if v not in (None, "")}
    block = f"{key}:  # written by `{writer}`\n" + "".join(
        "  " + ln + "\n" for ln in yaml.safe_dump(payload, sort_keys=False).splitlines()
    )
    lines.insert(start, block)
    new_text = "".join(lines)
    load_yaml_as(ProjectConfig, new_text, str(file))  # never write a file we cannot read
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    tmp.replace(file)
