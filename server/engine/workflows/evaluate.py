"""``identify evaluate``: two versions side by side on reviewed data they were not
trained on. Detector versions run on reviewed pictures, each with identification
through it (``training.evaluate``); head or embedder versions identify reviewed crops
(``evaluate_spaces``).

The pictures are the held-out side of the export's split (the same stable hash
``identify export`` and ``identify detector finetune`` use, so a fine-tuned version is
never measured on its own training pictures), or, with ``since``, every picture reviewed
from then on (newer than a version's training data). Each version runs as it would
live: a picture it finds nothing in is located instead, and that located object counts
as its detection, identified in a copy of the project without the references made of
these pictures' annotations (``judging_copy``: a reviewed crop is not judged against
itself). Nothing is written: the new version goes live only with ``identify versions
use``.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass

from server.engine.catalog.store import Store, VersionRow
from server.engine.decide.identifier import Identifier
from server.engine.decide.objects import decide, sight
from server.engine.errors import IdentifyError, ImageRejected
from server.engine.project.config import DetectorConfig, Project
from server.engine.training.dataset import TYPES, Picture, gather
from server.engine.training.evaluate import Box, IdScored, Scored, Seen, score
from server.engine.training.registry import Identity, Kind, live_identity, stored_path
from server.engine.vision import detectors
from server.engine.vision.embedders import project_embedder
from server.engine.vision.images import decode_image, read_image_bytes
from server.engine.workflows.common import Stage, open_project, quiet
from server.engine.workflows.evaluate_spaces import judged_rows, readable, score_space, side_config
from server.engine.workflows.export import when
from server.engine.workflows.judging_copy import judging_copy
from server.engine.workflows.preflight import preflight
from server.engine.workflows.reviewed_crops import MIN_HELD_OUT
from server.engine.workflows.versions import detector_config


@dataclass(frozen=True)
class Side:
    """One version evaluated."""

    name: str
    """``<id>: <name>`` (or the live one's name when unregistered)."""
    scored: Scored | IdScored


@dataclass(frozen=True)
class Compared:
    """Two versions on the same pictures."""

    project: Project
    kind: Kind
    data: str
    """Which pictures: ``val`` (a detector's), ``held-out`` (a head's) or ``since <time>``."""
    unreadable: int
    a: Side
    b: Side
    notes: tuple[str, ...] = ()

    def difference(self) -> dict[str, object]:
        """B minus A, per number (and per class's recall)."""
        a, b = self.a.scored, self.b.scored
        out: dict[str, object] = {k: round(getattr(b, k) - getattr(a, k), 4) for k in a.NUMBERS}
        classes = sorted(set(a.per_class_recall) | set(b.per_class_recall))
        out["per_class_recall"] = {
            c: round(b.per_class_recall.get(c, 0.0) - a.per_class_recall.get(c, 0.0), 4)
            for c in classes
        }
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "project": self.project.name,
            "kind": self.kind,
            "data": self.data,
            "unreadable": self.unreadable,
            "a": {"version": self.a.name, **self.a.scored.to_json()},
            "b": {"version": self.b.name, **self.b.scored.to_json()},
            "difference": self.difference(),
            "notes": list(self.notes),
        }


def _kind(store: Store, refs: Sequence[str]) -> Kind:
    """What is compared: the kind of the registry ids given (a detector for two lives)."""
    kinds = set()
    for ref in refs:
        if ref != "live":
            try:
                kinds.add(store.version(int(ref)).kind)
            except ValueError:
                raise IdentifyError(f"a version is a registry id or 'live', not {ref!r}") from None
    if len(kinds) > 1:
        raise IdentifyError(
            f"versions {' and '.join(refs)} are of different kinds ({', '.join(sorted(kinds))}): "
            "compare two detectors, two heads or two embedders"
        )
    return typing.cast(Kind, kinds.pop() if kinds else "detector")


def _version(store: Store, project: Project, ref: str, kind: Kind) -> VersionRow | Identity:
    if ref == "live":
        identity = live_identity(project, kind)
        return store.version_by_hash(kind, identity.content_hash) or identity
    return store.version(int(ref))


def _config(project: Project, version: VersionRow | Identity, live: bool) -> DetectorConfig:
    """A detector version's settings: the live one's as they are, a registered one's as
    it would be live (``versions.detector_config``)."""
    if live or isinstance(version, Identity):
        return project.config.detector
    return detector_config(project, version, stored_path(project, version))


def _name(version: VersionRow | Identity) -> str:
    return version.name if isinstance(version, Identity) else f"{version.id}: {version.name}"


def evaluate_versions(
    ref: str, a: str, b: str, since: str | None = None, stage: Stage = quiet
) -> Compared:
    """Run versions ``a`` and ``b`` (registry ids, or ``live``) on the reviewed data.

    Raises:
        ProjectConfigError, ModelUnavailableError, NotIndexedError: see ``preflight``.
        NotFoundError: no such version.
        IdentifyError: versions of two kinds, a version's file gone or changed, or
            nothing reviewed to evaluate on.
    """
    project = open_project(ref)
    preflight(project, indexed=True)
    start = when(since, "since")
    store = Store(project.db_path)
    try:
        kind = _kind(store, (a, b))
        versions = [_version(store, project, r, kind) for r in (a, b)]
        if kind != "detector":
            rows, crops, unreadable = readable(judged_rows(store, start))
            configs = [
                side_config(project, store, kind, v, r == "live")
                for v, r in zip(versions, (a, b), strict=True)
            ]
        else:
            gathered = gather(store, TYPES, since=start)
            made = {
                r.annotation_id: r.reference_id for r in store.training_rows(TYPES, since=start)
            }
    finally:
        store.close()
    names = [_name(v) for v in versions]
    if kind != "detector":
        sides = [
            Side(n, score_space(project, c, rows, crops, n, stage))
            for n, c in zip(names, configs, strict=True)
        ]
        data = f"since {start}" if start else "held-out"
        few = (
            f"only {len(rows)} crop(s) judged: with fewer than {MIN_HELD_OUT}, a rate's "
            "standard error passes 0.1, more than the gaps versions make"
        )
        notes = (few,) if len(rows) < MIN_HELD_OUT else ()
        return Compared(project, kind, data, unreadable, sides[0], sides[1], notes)
    pictures = [p for p in gathered.pictures if start is not None or p.split == "val"]
    if not pictures:
        where = f"reviewed since {start}" if start else "on the held-out (val) side"
        raise IdentifyError(f"no reviewed picture {where} to evaluate on: review more first")
    leave_out = {r for p in pictures for i in p.annotations if (r := made.get(i)) is not None}
    found = [
        detectors.make(_config(project, v, r == "live"), project.data_dir)
        for v, r in zip(versions, (a, b), strict=True)
    ]
    with judging_copy(project, project.config, leave_out, stage) as copy:
        scored, unreadable = _run(copy, pictures, found, stage)
    data = f"since {start}" if start else "val"
    sides = [Side(n, s) for n, s in zip(names, scored, strict=True)]
    return Compared(project, kind, data, unreadable, sides[0], sides[1])


def _run(
    project: Project,
    pictures: Sequence[Picture],
    found: Sequence[detectors.Detector | None],
    stage: Stage,
) -> tuple[list[Scored], int]:
    """Each detector on each picture, with identification through it."""
    ident = Identifier.open(project, project_embedder(project.config))
    known = set(ident.labels.values())
    truths: list[list[tuple[str, Box]]] = []
    seens: list[list[list[Seen]]] = [[] for _ in found]
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
    return [score(truths, s, known) for s in seens], unreadable


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
