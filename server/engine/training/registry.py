"""The model registry: every embedder, projection head and detector a project made or
used, as a version.

A version is known by its content: the SHA-256 of its file (a detector's weights, a
head's file), or, for what has no file of the project's own, of what names it (a built-in
detector such as ``quad``; the plain embedding with no head; an embedder by its name and
pretrained tag, and its checkpoint's content when it has one). The same file registered
twice is one version. Each version has its parent (a fine-tuned detector's base, a
head's embedder), when it was made, what it was trained on and how it did.

The project file says which version is live, as it always has (``detector:``,
``projection:``, ``model:``): the registry never disagrees with it, and a project file
edited by hand is read as it stands (its live version shown as unregistered until a
command registers it). Switching writes the project file's block; each switch is kept,
so a rollback goes back to the version live before.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from server.engine.catalog.store import Store, VersionRow
from server.engine.errors import IdentifyError
from server.engine.project.config import Project

Kind = Literal["embedder", "head", "detector"]
KINDS: tuple[Kind, ...] = ("embedder", "head", "detector")
PLAIN_HEAD = "plain"
"""The head version that is no head: the embedder's own vectors."""


@dataclass(frozen=True)
class Identity:
    """What a version is, read from a project file or a file on disk."""

    kind: Kind
    name: str
    path: Path | None
    content_hash: str


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes.

    Raises:
        IdentifyError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise IdentifyError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _named(text: str) -> str:
    return "name:" + hashlib.sha256(text.encode()).hexdigest()


def live_identity(project: Project, kind: Kind) -> Identity:
    """The version of ``kind`` the project file makes live."""
    cfg = project.config
    if kind == "detector":
        d = cfg.detector
        if d.kind == "yolo" and d.weights is not None:
            return Identity(kind, d.weights.stem, d.weights, file_hash(d.weights))
        return Identity(kind, f"builtin:{d.kind}", None, _named(f"detector:{d.kind}"))
    if kind == "head":
        if cfg.projection is None:
            return Identity(kind, PLAIN_HEAD, None, _named("head:plain"))
        p = cfg.projection
        return Identity(kind, p.id, p.file, file_hash(p.file))
    m = cfg.model
    name = f"{m.name}/{m.pretrained or 'default'}"
    if m.checkpoint is not None:
        return Identity(kind, name, m.checkpoint, file_hash(m.checkpoint))
    return Identity(kind, name, None, _named(f"embedder:{name}"))


def relative(project: Project, path: Path | None) -> str | None:
    """A model file's path as stored: relative to the project file's folder."""
    if path is None:
        return None
    return os.path.relpath(path.resolve(), project.file.resolve().parent)


def stored_path(project: Project, version: VersionRow) -> Path | None:
    """A version's file, resolved against the project file's folder."""
    if version.path is None:
        return None
    p = Path(version.path)
    return p if p.is_absolute() else (project.file.parent / p).resolve()


def register(
    store: Store,
    project: Project,
    identity: Identity,
    parent_id: int | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> VersionRow:
    """Register ``identity`` (once: a version already there is returned as it is)."""
    version_id = store.add_version(
        identity.kind,
        identity.name,
        relative(project, identity.path),
        identity.content_hash,
        parent_id,
        training or {},
        metrics or {},
    )
    return store.version(version_id)


def register_live(store: Store, project: Project, kind: Kind) -> VersionRow:
    """The live version of ``kind``, registered if it was not (with its parent: a head's
    embedder), and its going live noted the first time."""
    identity = live_identity(project, kind)
    known = store.version_by_hash(kind, identity.content_hash)
    if known is not None:
        return known
    parent = register_live(store, project, "embedder").id if kind == "head" else None
    training: dict[str, Any] = {"registered": "found live"}
    if kind == "detector":
        # What the block said besides, so that going back to it restores them.
        training |= {
            "image_size": project.config.detector.image_size,
            "classes": list(project.config.detector.classes),
        }
    version = register(store, project, identity, parent, training)
    store.record_switch(kind, version.id, "found live")
    return version


def live_versions(store: Store, project: Project) -> dict[Kind, VersionRow | Identity]:
    """Per kind, the live version: its registry row, or what the project file names
    when it is not registered yet (read only: nothing is written)."""
    out: dict[Kind, VersionRow | Identity] = {}
    for kind in KINDS:
        identity = live_identity(project, kind)
        out[kind] = store.version_by_hash(kind, identity.content_hash) or identity
    return out


def previous(store: Store, kind: Kind, live_id: int | None) -> VersionRow:
    """The version live before the live one (a rollback's target): the switches
    replayed as a stack, each rollback taking the top off, so that rolling back twice
    from C (after A, B, C) gives B, then A.

    Raises:
        IdentifyError: no earlier version went live.
    """
    stack: list[int] = []
    for version_id, _, reason in reversed(store.switches(kind)):
        if reason == "rollback" and len(stack) > 1:
            stack.pop()
        elif not stack or stack[-1] != version_id:
            stack.append(version_id)
    if stack and stack[-1] != live_id:
        return store.version(stack[-1])  # the file was edited since: back to the last
    if len(stack) > 1:
        return store.version(stack[-2])
    raise IdentifyError(f"no earlier {kind} version was live: nothing to roll back to")


def register_adopted(
    store: Store,
    before: Project,
    identity: Identity,
    parent_id: int | None,
    training: dict[str, Any],
    metrics: dict[str, Any],
    reason: str,
) -> VersionRow:
    """Register a version a command just made live, and the switch to it; ``before`` is
    the project as it was, whose live version is registered first so that a rollback
    finds it."""
    register_live(store, before, identity.kind)
    version = register(store, before, identity, parent_id, training, metrics)
    store.record_switch(identity.kind, version.id, reason)
    return version


def record_version(
    project: Project,
    identity: Identity,
    parent_id: int | None,
    training: dict[str, Any],
    metrics: dict[str, Any],
    adopted_by: str | None = None,
) -> VersionRow:
    """A version a command just made, registered in the project's database; with
    ``adopted_by`` (the command) it went live, and the switch is kept
    (``register_adopted``: ``project`` is the project as it was)."""
    store = Store(project.db_path)
    try:
        if adopted_by is None:
            return register(store, project, identity, parent_id, training, metrics)
        return register_adopted(store, project, identity, parent_id, training, metrics, adopted_by)
    finally:
        store.close()


def register_head(
    before: Project,
    head_id: str,
    head_file: Path,
    training: dict[str, Any],
    metrics: dict[str, Any],
) -> VersionRow:
    """An adopted projection head, made for the live embedder, with the switch to it."""
    store = Store(before.db_path)
    try:
        embedder = register_live(store, before, "embedder").id
    finally:
        store.close()
    identity = Identity("head", head_id, head_file, file_hash(head_file))
    return record_version(before, identity, embedder, training, metrics, "identify train")
