"""``identify versions``: the model registry (``training.registry``) listed, shown, and
the live version switched or rolled back.

A switch writes the project file's block under the writer lock, after checking that the
version's file is still the one registered (its content hash) and loads. A detector
takes effect at the next start; a head or an embedder changes the vector space, so the
index is built in the new space first (stored vectors of a space seen before are
reused, not recomputed), only then is the project file changed, and the thresholds are
recalibrated (``identify verify``), as ``identify train`` does: a run stopped on the way
leaves the project on its old version.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path

from server.engine.catalog.store import Store, VersionRow
from server.engine.errors import IdentifyError
from server.engine.project.config import (
    DetectorConfig,
    DetectorKind,
    Project,
    ProjectConfig,
    Projection,
    remove_block,
    write_block,
    write_projection,
)
from server.engine.training.registry import (
    KINDS,
    PLAIN_HEAD,
    Identity,
    Kind,
    file_hash,
    live_identity,
    previous,
    register_live,
    relative,
    stored_path,
)
from server.engine.vision import detectors
from server.engine.vision.embedders import project_embedder
from server.engine.workflows.common import Stage, open_project, quiet, reference_count, writer_lock
from server.engine.workflows.detector import own_detector_settings
from server.engine.workflows.index import IndexSummary, build_index
from server.engine.workflows.verify import run_verify
from server.engine.workflows.verify_report import VerifyReport


@dataclass(frozen=True)
class Listed:
    """One line of ``identify versions list``."""

    kind: Kind
    name: str
    version: VersionRow | None
    """None: the project file's live version, not registered yet."""
    live: bool


def _kind(kind: str | None) -> Kind | None:
    if kind is None:
        return None
    for k in KINDS:
        if k == kind:
            return k
    raise IdentifyError(f"unknown model kind {kind!r}; one of {', '.join(KINDS)}")


def list_versions(ref: str, kind: str | None = None) -> tuple[Project, list[Listed]]:
    """Every registered version (of ``kind``), oldest first, and which is live; a live
    version the project file names but nothing registered yet is listed too. Reads only.

    Raises:
        IdentifyError: an unknown kind, or a live model file that cannot be read.
    """
    wanted = _kind(kind)
    project = open_project(ref)
    kinds = [wanted] if wanted else list(KINDS)
    live = {k: live_identity(project, k) for k in kinds}
    rows: list[VersionRow] = []
    if project.db_path.exists():
        store = Store(project.db_path)
        try:
            rows = [v for k in kinds for v in store.versions(k)]
        finally:
            store.close()
    listed = []
    for v in rows:
        k = _kind(v.kind) or "detector"
        listed.append(Listed(k, v.name, v, v.content_hash == live[k].content_hash))
    registered = {(v.kind, v.content_hash) for v in rows}
    for k, identity in live.items():
        if (k, identity.content_hash) not in registered:
            listed.append(Listed(k, identity.name, None, True))
    return project, listed


def show_version(
    ref: str, version_id: int
) -> tuple[Project, VersionRow, bool, list[tuple[int, str, str]]]:
    """A version, whether it is live, and the switches of its kind (newest first).

    Raises:
        NotFoundError: no such version.
    """
    project = open_project(ref)
    if not project.db_path.exists():
        raise IdentifyError(f"{project.name} has no registry yet (run identify index first)")
    store = Store(project.db_path)
    try:
        version = store.version(version_id)
        kind = _kind(version.kind) or "detector"
        live = live_identity(project, kind).content_hash == version.content_hash
        return project, version, live, store.switches(kind)
    finally:
        store.close()


@dataclass(frozen=True)
class Switched:
    """What a switch did."""

    project: Project
    kind: Kind
    before: VersionRow | None
    """None: the live version's file could not be read."""
    after: VersionRow
    summary: IndexSummary | None = None
    """The index built in the new space (a head or an embedder)."""
    checked: VerifyReport | None = None
    """The recalibration that followed."""


def use_version(ref: str, version_id: int, stage: Stage = quiet, reason: str = "use") -> Switched:
    """Make ``version_id`` live (see the module docstring).

    Raises:
        NotFoundError: no such version.
        IdentifyError: it is live already, its file is gone or changed, or a head made
            for another embedder.
        ModelUnavailableError: its model does not load.
        ConflictError: another process holds the project (a running server).
    """
    project = open_project(ref)
    with writer_lock(project, f"identify versions {reason}"):
        store = Store(project.db_path)
        try:
            target = store.version(version_id)
            kind = _kind(target.kind) or "detector"
            try:
                before: VersionRow | None = register_live(store, project, kind)
            except IdentifyError:
                before = None  # the live file is gone or unreadable: switching away is the fix
            if before is not None and before.id == target.id:
                raise IdentifyError(f"{kind} version {target.id} ({target.name}) is live already")
            path = checked_file(project, target)
            summary, checked = _apply(project, store, kind, target, path, stage)
            store.record_switch(kind, target.id, reason)
        finally:
            store.close()
    return Switched(open_project(ref), kind, before, target, summary, checked)


def roll_back(ref: str, kind: str, stage: Stage = quiet) -> Switched:
    """Make the version live before the live one of ``kind`` live again.

    Raises:
        IdentifyError: an unknown kind, or no earlier version.
    """
    wanted = _kind(kind) or "detector"
    project = open_project(ref)
    if not project.db_path.exists():
        raise IdentifyError(f"no earlier {wanted} version was live: nothing to roll back to")
    store = Store(project.db_path)
    try:
        try:
            live = store.version_by_hash(wanted, live_identity(project, wanted).content_hash)
        except IdentifyError:
            live = None  # its file is gone: going back is the way out
        target = previous(store, wanted, None if live is None else live.id)
    finally:
        store.close()
    return use_version(ref, target.id, stage, "rollback")


def checked_file(project: Project, version: VersionRow) -> Path | None:
    """The version's file, checked to be the one registered (None: a built-in).

    Raises:
        IdentifyError: the file is gone or changed.
    """
    path = stored_path(project, version)
    if path is None:
        return None
    if not path.is_file():
        raise IdentifyError(f"version {version.id}'s file {path} is gone")
    if file_hash(path) != version.content_hash:
        raise IdentifyError(
            f"version {version.id}'s file {path} has changed since it was registered"
        )
    return path


def _apply(
    project: Project,
    store: Store,
    kind: Kind,
    target: VersionRow,
    path: Path | None,
    stage: Stage,
) -> tuple[IndexSummary | None, VerifyReport | None]:
    """Write the project file for ``target``, re-indexing first for a new space."""
    if kind == "detector":
        _apply_detector(project, target, path)
        return None, None
    new = space_config(project, store, kind, target, path)
    switched = dataclasses.replace(project, config=new)
    count = reference_count(project)
    with stage("re-indexing", count) as update:
        summary = build_index(switched, project_embedder(new), update)
    if kind == "embedder":
        m = new.model
        write_block(
            project.file,
            "model",
            {
                "name": m.name,
                "pretrained": m.pretrained,
                "checkpoint": relative(project, m.checkpoint),
                "device": m.device,
                "batch_size": m.batch_size,
            },
            "identify versions",
        )
    if new.projection is None:
        remove_block(project.file, "projection")
    else:
        write_projection(project.file, new.projection)
    reloaded = open_project(str(project.file))
    tested = min(count, reloaded.config.verify.max_references)
    with stage("re-verifying", tested) as update:
        checked = run_verify(reloaded, project_embedder(reloaded.config), progress=update)
    return summary, checked


def space_config(
    project: Project, store: Store, kind: Kind, target: VersionRow, path: Path | None
) -> ProjectConfig:
    """The project's configuration with ``target`` (a head or an embedder version, its
    file checked: ``path``) in place of the live one.

    Raises:
        IdentifyError: a head made for another embedder than the live one.
    """
    cfg = project.config
    if kind == "head":
        live = live_identity(project, "embedder")
        embedder_now = store.version_by_hash("embedder", live.content_hash)  # read only
        now = None if embedder_now is None else embedder_now.id
        if target.parent_id not in (None, now) and target.name != PLAIN_HEAD:
            raise IdentifyError(
                f"head version {target.id} was made for embedder version {target.parent_id}, "
                f"not the live one ({now or 'unregistered'}: {live.name})"
            )
        projection = None
        if path is not None:
            projection = Projection(
                file=path,
                id=target.name,
                trained_at=target.created_at,
                validation_top1=target.metrics.get("validation_top1"),
                validation_top1_plain=target.metrics.get("validation_top1_plain"),
            )
        return dataclasses.replace(cfg, projection=projection)
    name, _, pretrained = target.name.rpartition("/")  # names may hold a "/"
    model = dataclasses.replace(
        cfg.model,
        name=name,
        pretrained=None if pretrained in ("", "default") else pretrained,
        checkpoint=path,
    )
    return dataclasses.replace(cfg, model=model, projection=None)


def detector_config(project: Project, target: VersionRow, path: Path | None) -> DetectorConfig:
    """The project's detector settings with ``target`` in place: its weights (``path``;
    None: a built-in), the image size it was trained at, and the classes it had live (a
    class-agnostic model's none; a model never live with a filter, none)."""
    cfg = project.config.detector
    classes: tuple[str, ...] = ()
    if target.training.get("classes") and not target.training.get("class_agnostic"):
        classes = tuple(target.training["classes"])
    kind = target.name.removeprefix("builtin:") if path is None else "yolo"
    return dataclasses.replace(
        cfg,
        kind=typing.cast(DetectorKind, kind),
        weights=path,
        image_size=int(target.training.get("image_size", cfg.image_size)),
        classes=classes,
    )


def _apply_detector(project: Project, target: VersionRow, path: Path | None) -> None:
    """Write the detector block for ``target``, once its model loads with the classes it
    is to filter on (one clear error when it lacks one)."""
    config = detector_config(project, target, path)
    detectors.make(config, project.data_dir)
    block = {**own_detector_settings(project), "kind": config.kind}
    block.pop("classes", None)
    if config.classes:
        block["classes"] = list(config.classes)  # as it was live
    if path is not None:
        block["weights"] = relative(project, path)
    block["image_size"] = config.image_size
    write_block(project.file, "detector", block, "identify versions")


def describe(item: VersionRow | Identity) -> str:
    """A version in a few words."""
    if isinstance(item, Identity):
        return f"{item.name} (unregistered)"
    return f"{item.id}: {item.name}"
