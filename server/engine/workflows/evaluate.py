"""``identify evaluate``: two detector versions side by side on reviewed pictures they
were not trained on, each with identification through it (``training.evaluate``).

The pictures are the held-out side of the export's split (the same stable hash
``identify export`` and ``identify detector finetune`` use, so a fine-tuned version is
never measured on its own training pictures), or, with ``since``, every picture reviewed
from then on (newer than a version's training data). Each version runs as it would
live: a picture it finds nothing in is located instead, and that located object counts
as its detection. Nothing is written: the new version goes live only with
``identify versions use``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from server.engine.catalog.store import Store, VersionRow
from server.engine.decide.identifier import Identifier
from server.engine.decide.objects import decide, sight
from server.engine.errors import IdentifyError, ImageRejected
from server.engine.project.config import DetectorConfig, DetectorKind, Project
from server.engine.training.dataset import TYPES, Picture, gather
from server.engine.training.evaluate import Box, Scored, Seen, score
from server.engine.training.registry import Identity, live_identity, stored_path
from server.engine.vision import detectors
from server.engine.vision.embedders import project_embedder
from server.engine.vision.images import decode_image, read_image_bytes
from server.engine.workflows.common import Stage, open_project, quiet
from server.engine.workflows.export import when
from server.engine.workflows.preflight import preflight


@dataclass(frozen=True)
class Side:
    """One version evaluated."""

    name: str
    """``<id>: <name>`` (or the live one's name when unregistered)."""
    scored: Scored


@dataclass(frozen=True)
class Compared:
    """Two versions on the same pictures."""

    project: Project
    data: str
    """Which pictures: ``val`` or ``since <time>``."""
    unreadable: int
    a: Side
    b: Side

    def difference(self) -> dict[str, object]:
        """B minus A, per number (and per class's recall)."""
        a, b = self.a.scored, self.b.scored
        keys = ("map50", "recall", "false_positives_per_picture", "open_set_accuracy")
        out: dict[str, object] = {k: round(getattr(b, k) - getattr(a, k), 4) for k in keys}
        classes = sorted(set(a.per_class_recall) | set(b.per_class_recall))
        out["per_class_recall"] = {
            c: round(b.per_class_recall.get(c, 0.0) - a.per_class_recall.get(c, 0.0), 4)
            for c in classes
        }
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "project": self.project.name,
            "data": self.data,
            "unreadable": self.unreadable,
            "a": {"version": self.a.name, **self.a.scored.to_json()},
            "b": {"version": self.b.name, **self.b.scored.to_json()},
            "difference": self.difference(),
        }


def _version(store: Store, project: Project, ref: str) -> VersionRow | Identity:
    if ref == "live":
        identity = live_identity(project, "detector")
        return store.version_by_hash("detector", identity.content_hash) or identity
    try:
        version = store.version(int(ref))
    except ValueError:
        raise IdentifyError(f"a version is a registry id or 'live', not {ref!r}") from None
    if version.kind != "detector":
        raise IdentifyError(f"version {version.id} is a {version.kind}, not a detector")
    return version


def _config(project: Project, version: VersionRow | Identity) -> DetectorConfig:
    cfg = project.config.detector
    if isinstance(version, Identity):
        return cfg
    path = stored_path(project, version)
    if path is None:
        kind = typing.cast(DetectorKind, version.name.removeprefix("builtin:"))
        return dataclasses.replace(cfg, kind=kind, weights=None)
    size = int(version.training.get("image_size", cfg.image_size))
    classes = () if version.training.get("class_agnostic") else cfg.classes
    return dataclasses.replace(cfg, kind="yolo", weights=path, image_size=size, classes=classes)


def _name(version: VersionRow | Identity) -> str:
    return version.name if isinstance(version, Identity) else f"{version.id}: {version.name}"


def evaluate_versions(
    ref: str, a: str, b: str, since: str | None = None, stage: Stage = quiet
) -> Compared:
    """Run versions ``a`` and ``b`` (registry ids, or ``live``) on the reviewed pictures.

    Raises:
        ProjectConfigError, ModelUnavailableError, NotIndexedError: see ``preflight``.
        IdentifyError: not a detector version, or no reviewed picture to evaluate on.
    """
    project = open_project(ref)
    preflight(project, indexed=True)
    start = when(since, "since")
    store = Store(project.db_path)
    try:
        versions = [_version(store, project, r) for r in (a, b)]
        gathered = gather(store, TYPES, since=start)
        known = {r.label for r in store.active_references()}
    finally:
        store.close()
    pictures = [p for p in gathered.pictures if start is not None or p.split == "val"]
    if not pictures:
        where = f"reviewed since {start}" if start else "on the held-out (val) side"
        raise IdentifyError(f"no reviewed picture {where} to evaluate on: review more first")
    configs = [_config(project, v) for v in versions]
    found = [detectors.make(c, project.data_dir) for c in configs]
    ident = Identifier.open(project, project_embedder(project.config))
    truths: list[list[tuple[str, Box]]] = []
    seens: list[list[list[Seen]]] = [[], []]
    unreadable = 0
    try:
        with stage("evaluating", len(pictures)) as update:
            for picture in pictures:
                image = _image(picture)
                update(1)
                if image is None:
                    unreadable += 1
                    continue
                truths.append(picture.boxes)
                for side, detector in enumerate(found):
                    seens[side].append(_seen(ident, detector, image))
    finally:
        ident.close()
    data = f"since {start}" if start else "val"
    sides = [Side(_name(v), score(truths, s, known)) for v, s in zip(versions, seens, strict=True)]
    return Compared(project, data, unreadable, sides[0], sides[1])


def _image(picture: Picture) -> typing.Any:
    try:
        return decode_image(read_image_bytes(picture.path), picture.path.name)
    except ImageRejected:
        return None


def _seen(ident: Identifier, detector: detectors.Detector | None, image: typing.Any) -> list[Seen]:
    h, w = image.shape[:2]
    out = []
    for f in decide(ident, sight(ident, detector, image)):
        b = f.region.box
        box: Box = (0, 0, w, h) if b is None else (int(b[0]), int(b[1]), int(b[2]), int(b[3]))
        out.append(
            Seen(
                box,
                1.0 if f.detection is None else float(f.detection.score),
                f.decision.label if f.decision.matched else None,
            )
        )
    return out
