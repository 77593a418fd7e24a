"""A project open for live use: identification with tracking and a review queue, and
reference and threshold changes that apply to the very next query.

This is what ``identify serve`` runs, with no HTTP in it. It is not thread-safe on
purpose: the server calls it from one engine thread only (the one that owns the model,
the index and the database connection), so changes and queries never interleave.
Every change is committed to the database first; the index is derived data, saved by
``save`` and brought back in step from the database on the next ``open`` after a crash.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from server.engine.catalog.media import Collected, Media
from server.engine.catalog.store import QueueEntry, Store
from server.engine.decide.curve import threshold_curve
from server.engine.decide.decision import (
    Decision,
    Thresholds,
    decide,
    resolve_thresholds,
    with_overrides,
)
from server.engine.decide.hubs import Hub, find_hubs
from server.engine.decide.identifier import Evidence, Identifier, Region
from server.engine.decide.tracking import Tracker
from server.engine.errors import ConflictError, IdentifyError, ImageRejected, NotFoundError
from server.engine.live.review import ACTIONS, ReviewItem, ReviewQueue
from server.engine.project.config import DEFAULT_TAXONOMY, Project
from server.engine.project.naming import clean_label, label_from_name
from server.engine.vision.embedders import Embedder
from server.engine.vision.images import (
    IMAGE_SUFFIXES,
    MAX_WORK_SIDE,
    WORK_MIN_SIDE,
    content_hash,
    decode_image,
    downscale,
    encode_jpeg,
    flatten_alpha,
    stored_form,
)
from server.engine.vision.locate import to_box
from server.engine.vision.quality import gate
from server.engine.workflows.index import (
    LIVE_SOURCES,
    ReferenceEvidence,
    embed_reference,
    reference_vector_id,
    sync_index,
    view_backgrounds,
)

EventSink = Callable[[dict[str, Any]], None]
"""Receives events (identifications, queue and reference changes); called on the
engine thread, so it must only hand the event over."""

CURVE_OBSERVATIONS = 20_000
"""Recent identifications a threshold curve counts."""
HUB_WINDOW = 2000
"""Recent observations the hub check looks at."""
HUB_CACHE_S = 60.0
"""How long a hub check is reused (health is asked often)."""
MAX_IMPORT_FILES = 1000
"""Most files one import adds."""
MAX_PATH_CHARS = 4096
"""Longest path an import takes (Linux's PATH_MAX)."""
REVIEW_MAX_SIDE = 384
"""Longest side of a review item's stored picture: enough to see what it is and to make
a reference of (the model looks at 224-256 px)."""
REVIEW_JPEG_QUALITY = 75
"""The stored picture is for a person to see what was there (and the context of its
box); a region kept for a reference is stored at ``REGION_JPEG_QUALITY``."""
REGION_JPEG_QUALITY = 80
REGION_MIN_SIDE = 224
"""A box the stored picture holds at fewer pixels than this (on its longer side, the
model's input size) is also kept as it came, for the reference a label makes of it."""
REGION_GROWTH = 0.1
"""A reference made from a review item's box takes this share of the box's size as
context on each side (the index's references are framed loosely, too)."""
THRESHOLD_RANGE = (0.0, 2.0)
"""Scores are cosine similarity plus a second-stage bonus, so they can pass 1."""
MARGIN_RANGE = (0.0, 1.0)


@dataclass
class LiveStats:
    """Counters since the service opened (shown by health)."""

    identified: int = 0
    queued: int = 0
    gate_rejected: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class PreparedReference:
    """A reference ready to be committed (see ``Service.prepare_reference``)."""

    label: str
    taxonomy: str | None
    """As asked; None: the class's own, or the default, decided when committed."""
    digest: str
    stored: bytes
    """The file kept under ``media/references`` (see ``images.stored_form``)."""
    suffix: str
    size: tuple[int, int]
    evidence: ReferenceEvidence


@dataclass(frozen=True)
class Resolution:
    """A reviewer's decision, checked (see ``Service.resolve_plan``)."""

    item: ReviewItem
    status: str
    """The item's final status."""
    label: str | None
    """The class it becomes a reference of; None for false positives and skips."""
    region: str | None


@dataclass(frozen=True)
class Prepared:
    """A decoded picture as the regions that may hold the object, each with its
    evidence (the whole picture first), ready for the decision."""

    regions: list[Region]


@dataclass(frozen=True)
class ObjectResult:
    """One object in a frame: the decision and what happened to it."""

    decision: Decision
    bbox: Sequence[int] | None = None
    track_id: str | None = None
    review_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The object shape of ``identify match --json``, plus track and review ids."""
        out = self.decision.to_json(bbox=self.bbox)
        out["track_id"] = self.track_id
        out["review_id"] = self.review_id
        return out


class Service:
    """One project, open for identification and changes. See the module docstring."""

    def __init__(
        self,
        project: Project,
        embedder: Embedder,
        store: Store,
        identifier: Identifier,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.project = project
        self.embedder = embedder
        self.store = store
        self.ident = identifier
        self.queue = ReviewQueue(store)
        self.media = Media(project.data_dir, store)
        self.tracker = Tracker(project.config.review)
        self.stats = LiveStats()
        self._emit = on_event or (lambda event: None)
        self._clock = clock
        self._backgrounds = view_backgrounds()
        self.dirty = False
        """The in-memory index differs from the file on disk."""
        self._hubs: tuple[float, list[Hub]] | None = None

    @classmethod
    def open(
        cls, project: Project, embedder: Embedder, on_event: EventSink | None = None
    ) -> Service:
        """Open the project's database and index (bringing the index in step).

        Raises:
            NotIndexedError: the project was never indexed.
            IndexMismatchError: the index was built with another model.
        """
        store = Store(project.db_path)
        try:
            index, changed = sync_index(project, store, embedder)
            ident = Identifier(project, embedder, store, index)
        except BaseException:
            store.close()
            raise
        service = cls(project, embedder, store, ident, on_event)
        service.dirty = changed
        service.ident.thresholds = service._thresholds()
        return service

    def close(self) -> None:
        """Save the index if it changed and close the database."""
        try:
            self.save()
        finally:
            self.store.close()

    def save(self) -> bool:
        """Write the index if it changed since the last save; returns whether it did."""
        if not self.dirty:
            return False
        self.ident.index.save()
        self.dirty = False
        return True

    def warm_up(self) -> None:
        """Run the model once so the first real request does not pay for lazy set-up."""
        self.ident.regions(np.full((480, 640, 3), 127, np.uint8))

    # --- identification -------------------------------------------------------------

    def prepare(self, image: np.ndarray | bytes, name: str = "upload") -> Prepared:
        """Decode an image and compute its evidence (embedding, local features).

        The one step that may run on several threads at once (it reads only the model
        and the project settings); everything else runs on the engine thread.

        Raises:
            ImageRejected: bytes that are not a usable image.
        """
        if isinstance(image, bytes):
            image = decode_image(image, name, min_side=WORK_MIN_SIDE, max_side=MAX_WORK_SIDE)
        image = flatten_alpha(image)
        return Prepared(self.ident.regions(image))

    def identify_prepared(
        self, prepared: Prepared, *, source: str, live: bool = False, record: bool = True
    ) -> list[ObjectResult]:
        """Decide about a prepared picture: one object, found by ``locate``.

        A miss (unknown, or a match below the margin threshold) that passes the quality
        gate is queued for review with its crop. ``live`` frames are smoothed per track
        and queued once per track; other images are recorded and queued one by one.
        """
        decision, region = self.ident.decide_regions(prepared.regions)
        queued_before = self.stats.queued
        # What is recorded and queued is the whole picture (with the located box in the
        # result): for a miss the box is only where the picture looked most like
        # something known, and the reviewer must see what was really there.
        whole = prepared.regions[0]
        image, ev, bbox = whole.image, whole.evidence, region.box
        if live:
            result = self._live_object(whole, region, source)
        else:
            review_id = None
            if record:
                queue = not decision.matched and self._passes_gate(image)
                review_id = self._record(image, ev, decision, bbox, source, None, queue=queue)
            result = ObjectResult(decision, bbox, None, review_id)
        self.stats.identified += 1
        objects = [result]
        self._emit(
            {"type": "identification", "source": source, "objects": [o.to_json() for o in objects]}
        )
        for obj in objects:
            if obj.review_id is not None:
                # A new item, or the same picture again on a waiting one (its count).
                action = "added" if self.stats.queued > queued_before else "seen_again"
                self._emit(
                    {
                        "type": "queue",
                        "action": action,
                        "item_id": obj.review_id,
                        "pending": self.queue.pending(),
                    }
                )
        return objects

    def identify(
        self,
        image: np.ndarray | bytes,
        *,
        source: str,
        live: bool = False,
        record: bool = True,
        name: str = "upload",
    ) -> list[ObjectResult]:
        """``prepare`` then ``identify_prepared``, on the calling thread.

        Raises:
            ImageRejected: bytes that are not a usable image.
        """
        return self.identify_prepared(
            self.prepare(image, name), source=source, live=live, record=record
        )

    def _region_file(
        self, image: np.ndarray, bbox: Sequence[int] | None, stored_box: Sequence[int] | None
    ) -> str | None:
        """When the stored picture holds the object's box at fewer than
        ``REGION_MIN_SIDE`` pixels but the picture as it came held it at more, keep the
        region (grown by ``REGION_GROWTH``) at the resolution it came in (at most
        ``REVIEW_MAX_SIDE``): a label makes its reference of that. Returns its path."""
        if bbox is None or stored_box is None:
            return None
        stored_side = max(stored_box[2] - stored_box[0], stored_box[3] - stored_box[1])
        side = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
        if stored_side >= REGION_MIN_SIDE or side <= stored_side:
            return None
        h, w = image.shape[:2]
        x0, y0, x1, y1 = to_box(
            (bbox[0] / w, bbox[1] / h, bbox[2] / w, bbox[3] / h), w, h, REGION_GROWTH
        )
        region, _ = downscale(np.ascontiguousarray(image[y0:y1, x0:x1]), REVIEW_MAX_SIDE)
        data = encode_jpeg(region, REGION_JPEG_QUALITY)
        return self.media.write("crops", content_hash(data), ".jpg", data)

    def _live_object(self, whole: Region, region: Region, source: str) -> ObjectResult:
        """Without a detector the track follows the whole frame (a located box moves with
        the grid it snaps to); the located region's candidates are smoothed over it."""
        review = self.project.config.review
        image, ev, bbox = whole.image, whole.evidence, region.box
        track = self.tracker.assign(source, None, ev.vector, self._clock(), set())
        track.update(self.ident.candidates(region.evidence), review.smoothing)
        decision = decide(
            track.smoothed(), self.ident.thresholds, self.ident.taxonomy_of, picture=True
        )
        review_id = None
        if track.frames >= review.min_track_frames and not track.recorded:
            # One observation per appearance, decided on the smoothed scores; a miss
            # waits for a frame that passes the quality gate.
            miss = not decision.matched
            if not miss or self._passes_gate(image, track_gated=track.gated):
                track.recorded = True
                review_id = self._record(image, ev, decision, bbox, source, track.id, queue=miss)
            else:
                track.gated = True
        return ObjectResult(decision, bbox, track.id, review_id)

    def _passes_gate(self, crop: np.ndarray, track_gated: bool = False) -> bool:
        """Whether a miss's crop may be queued; rejections are counted (once per
        track for live video)."""
        why_not = gate(crop, self.project.config.review)
        if why_not is not None and not track_gated:
            self.stats.gate_rejected[why_not] += 1
        return why_not is None

    def _record(
        self,
        image: np.ndarray,
        ev: Evidence,
        decision: Decision,
        bbox: Sequence[int] | None,
        source: str,
        track_id: str | None,
        queue: bool,
    ) -> int | None:
        """Store the observation and, with ``queue``, a review item with its picture:
        the whole picture at most ``REVIEW_MAX_SIDE`` px, with the box the object was
        found in. The same picture from the same source while its item still waits is
        counted on that item (``seen``) instead of queued again.

        Returns the review item id, if one was queued (or counted).
        """
        entry, path = None, ""
        if queue:
            picture, scale = downscale(image, REVIEW_MAX_SIDE)
            data = encode_jpeg(picture, REVIEW_JPEG_QUALITY)
            digest = content_hash(data)
            duplicate = self.store.pending_duplicate(digest, source)
            if duplicate is not None:
                self.store.seen_again(duplicate)
                return duplicate
            path = self.media.write("crops", digest, ".jpg", data)
            box = None if bbox is None else [round(v * scale) for v in bbox]
            top = decision.candidates[0] if decision.candidates else None
            verified = (
                top is not None
                and top.inliers is not None
                and top.inliers >= self.project.config.rerank.min_inliers
            )
            entry = QueueEntry(
                source=source,
                track_id=track_id,
                taxonomy=self.ident.taxonomy_of.get(top.label if top else "", DEFAULT_TAXONOMY),
                box=box,
                region="whole" if box is None else ("verified" if verified else "doubtful"),
                region_path=self._region_file(image, bbox, box),
            )
        else:
            digest = content_hash(image.tobytes())
        recorded = self.store.record(
            path=path,
            content_hash=digest,
            width=image.shape[1],
            height=image.shape[0],
            model_id=self.embedder.spec.space_id,
            embedding=ev.vector,
            result=decision.to_json(bbox=bbox),
            kind="crop",
            queue=entry,
        )
        if recorded.review_id is not None:
            self.stats.queued += 1
        return recorded.review_id

    # --- references -----------------------------------------------------------------

    def classes(self) -> list[dict[str, Any]]:
        """Every class with its taxonomy and number of references."""
        rows = self.store.db.execute(
            "select label, min(taxonomy), count(*) from images where kind = 'reference' "
            "and status = 'active' group by label order by label"
        ).fetchall()
        hubs = {h["label"] for h in self.hubs()}
        return [
            {"label": r[0], "taxonomy": r[1], "references": int(r[2]), "hub": r[0] in hubs}
            for r in rows
        ]

    def references(self, label: str) -> list[dict[str, Any]]:
        """The references of one class.

        Raises:
            NotFoundError: no such class.
        """
        rows = [r for r in self.store.active_references() if r.label == label]
        if not rows:
            raise NotFoundError(f"no class {label!r}")
        hubs = {h["reference_id"] for h in self.hubs()}
        return [
            {
                "id": r.id,
                "label": r.label,
                "taxonomy": r.taxonomy,
                "source": "folder" if r.source not in LIVE_SOURCES else r.source,
                "path": r.path,
                "hub": r.id in hubs,
            }
            for r in rows
        ]

    def reference_file(self, ref_id: int) -> Path:
        """The image file of an active reference (only inside the project's folders).

        Raises:
            NotFoundError: no such reference, or its file is gone.
        """
        row = next((r for r in self.store.active_references() if r.id == ref_id), None)
        if row is None:
            raise NotFoundError(f"no reference {ref_id}")
        path = Path(row.path).resolve()
        roots = [s.path.resolve() for s in self.project.config.references]
        roots.append((self.project.data_dir / "media").resolve())
        if not any(path.is_relative_to(r) for r in roots) or not path.is_file():
            raise NotFoundError(f"the image of reference {ref_id} is not available")
        return path

    def prepare_reference(
        self, data: bytes, label: object, taxonomy: str | None = None
    ) -> PreparedReference:
        """The heavy, read-only half of adding a reference: check the label, decode, pass
        the quality gate, embed the plain image and its synthetic views, find its local
        features. Touches neither the database nor the index, so it runs on a worker
        while the engine thread goes on identifying.

        Raises:
            ImageRejected: not a usable image, or one the quality gate refuses.
            IdentifyError: a bad label or an undeclared taxonomy.
        """
        name = clean_label(label)
        if taxonomy is not None:
            self._declared_taxonomy(taxonomy)
        image = decode_image(data, "reference", keep_alpha=True, max_side=MAX_WORK_SIDE)
        why_not = gate(flatten_alpha(image), self.project.config.review)
        if why_not is not None:
            review = self.project.config.review
            setting = {
                "too_small": f"review.min_crop_side {review.min_crop_side} px",
                "noise": f"review.min_pixel_correlation {review.min_pixel_correlation}",
                "blurry": f"review.min_sharpness {review.min_sharpness}",
            }[why_not]
            raise ImageRejected(
                f"the reference is {why_not.replace('_', ' ')} ({setting}): a poor "
                "reference would attract wrong matches"
            )
        digest = content_hash(data)
        evidence = embed_reference(self.project, self.embedder, image, digest, self._backgrounds)
        stored, suffix = stored_form(data, image)
        return PreparedReference(
            name, taxonomy, digest, stored, suffix, (image.shape[1], image.shape[0]), evidence
        )

    def commit_reference(
        self,
        prepared: PreparedReference,
        source: str = "api",
        also: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """The engine thread's half: store the file and the rows in one go, add the
        vector to the index; searchable by the very next query. ``also(reference id)``
        writes more in the same transaction (a review label); if it raises, nothing of
        the reference is written either."""
        name, size = prepared.label, prepared.size
        tax = self._taxonomy_for(name, prepared.taxonomy)
        path = self.media.write("references", prepared.digest, prepared.suffix, prepared.stored)
        try:
            with self.store.db.conn:
                ref_id = self.store.add_reference(
                    path=path,
                    content_hash=prepared.digest,
                    label=name,
                    taxonomy=tax,
                    rarity=None,
                    source=source,
                    width=size[0],
                    height=size[1],
                )
                prepared.evidence.save(self.store, ref_id, self._vector_id, size)
                if also is not None:
                    also(ref_id)
        except BaseException:
            self.media.forget(path, -1)  # rolled back: the file too, unless shared
            raise
        self.ident.index.add([ref_id], prepared.evidence.vector[None, :])
        self.ident.set_reference(ref_id, name, tax)
        self.dirty = True
        self._emit({"type": "references", "action": "added", "id": ref_id, "label": name})
        return {"id": ref_id, "label": name, "taxonomy": tax}

    def add_reference(
        self, data: bytes, label: object, taxonomy: str | None = None, source: str = "api"
    ) -> dict[str, Any]:
        """Make an image a reference of ``label`` (a new or an existing class), searchable
        by the very next query: ``prepare_reference`` then ``commit_reference``.

        Raises:
            ImageRejected: not a usable image, or one the quality gate refuses.
            IdentifyError: a bad label or an undeclared taxonomy.
        """
        return self.commit_reference(self.prepare_reference(data, label, taxonomy), source)

    def import_plan(self, path: str, label: object = None) -> list[tuple[Path, object]]:
        """The files an import of ``path`` would add, each with its label: one file, or
        every image file directly in a folder; each label is ``label`` if given, else
        the file's name by the project's naming rules. Quick: reads no image.

        Raises:
            NotFoundError: no such file or folder.
            IdentifyError: an unusable path, too many files, or a folder with no image.
        """
        if len(path) > MAX_PATH_CHARS or "\x00" in path:
            raise IdentifyError(f"not a usable path (at most {MAX_PATH_CHARS} characters, no NUL)")
        root = Path(path).expanduser()
        try:
            if root.is_file():
                files = [root]
            elif root.is_dir():
                files = sorted(
                    p
                    for p in root.iterdir()
                    if p.is_file()
                    and not p.name.startswith(".")
                    and p.suffix.lower() in IMAGE_SUFFIXES
                )
            else:
                raise NotFoundError(f"no file or folder {path[:200]!r} on the server")
        except OSError as exc:
            raise IdentifyError(f"cannot read {path[:200]!r}: {exc.strerror or exc}") from None
        if not files:
            raise IdentifyError(f"no image files in {path}")
        if len(files) > MAX_IMPORT_FILES:
            raise IdentifyError(f"{len(files)} files; import at most {MAX_IMPORT_FILES} at once")
        return [
            (
                f,
                label
                if label is not None
                else label_from_name(f.stem, self.project.config.naming).label,
            )
            for f in files
        ]

    def remove_reference(self, ref_id: int) -> None:
        """Take a reference out of the index for good (``identify index`` will not bring
        its file back).

        Raises:
            NotFoundError: no such active reference.
        """
        row = next((r for r in self.store.active_references() if r.id == ref_id), None)
        if row is None:
            raise NotFoundError(f"no reference {ref_id}")
        self.store.delete_reference(ref_id)
        self.media.forget(row.path, ref_id)
        self.ident.index.remove([ref_id])
        self.ident.drop_references([ref_id])
        self.dirty = True
        self._emit({"type": "references", "action": "removed", "id": ref_id, "label": row.label})

    def rename_class(self, old: str, new: object) -> dict[str, Any]:
        """Rename a class.

        Raises:
            NotFoundError: no class ``old``.
            ConflictError: ``new`` is taken (merge instead).
        """
        name = clean_label(new)
        labels = {c["label"] for c in self.classes()}
        if old not in labels:
            raise NotFoundError(f"no class {old!r}")
        if name in labels and name != old:
            raise ConflictError(f"class {name!r} exists; merge {old!r} into it instead")
        moved = self.store.rename_label(old, name)
        self.ident.rename_class(old, name)
        self.ident.thresholds = self._thresholds()
        self._emit({"type": "references", "action": "renamed", "from": old, "to": name})
        return {"label": name, "references": moved}

    def merge_classes(self, sources: Sequence[str], into: str) -> dict[str, Any]:
        """Move every reference of ``sources`` into the existing class ``into``.

        Raises:
            NotFoundError: a class does not exist.
        """
        labels = {c["label"] for c in self.classes()}
        missing = [s for s in [*sources, into] if s not in labels]
        if missing:
            raise NotFoundError(f"no class {missing[0]!r}")
        moved = 0
        for old in sources:
            if old != into:
                moved += self.store.rename_label(old, into)
                self.ident.rename_class(old, into)
        self.ident.thresholds = self._thresholds()
        self._emit({"type": "references", "action": "merged", "from": list(sources), "to": into})
        return {"label": into, "moved": moved}

    def _declared_taxonomy(self, taxonomy: str) -> str:
        known = {t.name for t in self.project.config.taxonomies} | {DEFAULT_TAXONOMY}
        if taxonomy not in known:
            raise IdentifyError(
                f"taxonomy {taxonomy[:100]!r} is not declared in the project "
                f"(declared: {', '.join(sorted(known))})"
            )
        return taxonomy

    def _taxonomy_for(self, label: str, taxonomy: str | None) -> str:
        if taxonomy is not None:
            return self._declared_taxonomy(taxonomy)
        return self.ident.taxonomy_of.get(label, DEFAULT_TAXONOMY)

    @property
    def _vector_id(self) -> str:
        return reference_vector_id(self.project, self.embedder)

    # --- review ---------------------------------------------------------------------

    def resolve(
        self,
        item_id: int,
        action: str,
        label: object = None,
        candidate: int | None = None,
        region: str | None = None,
    ) -> ReviewItem:
        """A reviewer's decision about a queued item.

        ``confirm`` accepts the top candidate (or candidate number ``candidate``, from
        1); ``correct`` gives the true ``label`` (a new name makes a new class); both
        make the item's picture a reference at once: the region the object was found in
        (``region="whole"``: the whole picture; see ``_reference_bytes``).
        ``false_positive`` says none of the candidates is right and it is not worth a
        class; ``skip`` closes it unlabelled.

        The server runs the three steps apart (``resolve_plan`` and ``resolve_commit``
        on the engine thread, ``prepare_resolution`` on a worker); this runs them here.

        Raises:
            NotFoundError: no such item.
            ConflictError: already resolved (nothing is labelled twice).
            IdentifyError: an unknown action, a missing label or candidate.
        """
        plan = self.resolve_plan(item_id, action, label, candidate, region)
        return self.resolve_commit(plan, self.prepare_resolution(plan))

    def resolve_plan(
        self,
        item_id: int,
        action: str,
        label: object = None,
        candidate: int | None = None,
        region: str | None = None,
    ) -> Resolution:
        """Check a decision and work out its label (engine thread; quick).

        Raises: as ``resolve``.
        """
        if action not in ACTIONS:
            raise IdentifyError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        if region not in (None, "box", "whole"):
            raise IdentifyError(
                "region must be 'box' (where the object was found) or 'whole' (the whole picture)"
            )
        item = self.queue.get(item_id)
        if item.status != "pending":
            raise ConflictError(f"review item {item_id} is already {item.status}")
        final: str | None = None
        if action == "confirm":
            number = 1 if candidate is None else candidate
            if not isinstance(number, int) or not 1 <= number <= len(item.candidates):
                raise IdentifyError(
                    f"item {item_id} has {len(item.candidates)} candidates; pick 1 to "
                    f"{len(item.candidates)}"
                )
            # A candidate's class may have been renamed or merged since it was queued.
            queued = item.candidates[number - 1]["label"]
            final = self.store.aliases().get(queued, queued)
        elif action == "correct":
            if label is None:
                raise IdentifyError("correct needs the right label")
            final = clean_label(label)
        return Resolution(item, ACTIONS[action], final, region)

    def prepare_resolution(self, plan: Resolution) -> PreparedReference | None:
        """The reference a labelling decision makes, ready to commit (worker-safe: reads
        the item's picture file, touches neither database nor index)."""
        if plan.label is None:
            return None
        return self.prepare_reference(self._reference_bytes(plan.item, plan.region), plan.label)

    def resolve_commit(self, plan: Resolution, prepared: PreparedReference | None) -> ReviewItem:
        """Apply a decision (engine thread): the item must still be pending, then its
        reference is committed and the item resolved.

        Raises:
            ConflictError: resolved meanwhile by someone else (nothing is written).
        """
        item_id = plan.item.id
        if prepared is None:
            resolved = self.queue.resolve(item_id, plan.status, plan.label, None)
        else:
            # The reference and the label commit together: a crash between them can
            # leave neither an orphan reference nor a labelled item without one.
            self.commit_reference(
                prepared,
                source="review",
                also=lambda ref_id: self.queue.mark_resolved(
                    item_id, plan.status, plan.label, ref_id
                ),
            )
            resolved = self.queue.get(item_id)
        self._emit(
            {
                "type": "queue",
                "action": "resolved",
                "item_id": item_id,
                "status": resolved.status,
                "label": plan.label,
                "pending": self.queue.pending(),
            }
        )
        return resolved

    def _reference_bytes(self, item: ReviewItem, region: str | None) -> bytes:
        """What a label makes a reference of: the region the object was found in, grown
        by ``REGION_GROWTH`` (the default whenever the item has a box), or with
        ``region="whole"`` the whole stored picture."""
        if item.box is not None and region != "whole" and item.region_path:
            try:
                return Path(item.region_path).read_bytes()  # the region as it came
            except OSError:
                pass  # gone: cut it from the stored picture instead
        try:
            data = Path(item.crop_path).read_bytes()
        except OSError:
            raise NotFoundError(f"the picture of review item {item.id} is missing") from None
        if item.box is None or region == "whole":
            return data
        picture = decode_image(data, f"review item {item.id}")
        h, w = picture.shape[:2]
        x0, y0, x1, y1 = item.box
        gx0, gy0, gx1, gy1 = to_box((x0 / w, y0 / h, x1 / w, y1 / h), w, h, REGION_GROWTH)
        if gx1 - gx0 < 2 or gy1 - gy0 < 2:
            return data
        return encode_jpeg(np.ascontiguousarray(picture[gy0:gy1, gx0:gx1]), 95)

    def reopen(self, item_id: int) -> ReviewItem:
        """Undo a reviewer's decision: the item is pending again, and the reference its
        label made (if any) is removed.

        Raises:
            NotFoundError: no such item.
            ConflictError: it is still pending.
        """
        item = self.queue.get(item_id)
        if item.status == "pending":
            raise ConflictError(f"review item {item_id} is still pending")
        if item.reference_id is not None:
            try:
                self.remove_reference(item.reference_id)
            except NotFoundError:
                pass  # removed meanwhile by hand: nothing left to undo there
        reopened = self.queue.reopen(item_id)
        self._emit(
            {
                "type": "queue",
                "action": "reopened",
                "item_id": item_id,
                "pending": self.queue.pending(),
            }
        )
        return reopened

    def review_stats(self) -> dict[str, Any]:
        """Queue size, decisions per day, decision rates and auto-label coverage."""
        counts = self.queue.counts()
        decided = sum(counts[s] for s in ("confirmed", "corrected", "false_positive"))
        obs = self.store.db.execute(
            "select count(*), coalesce(sum(matched), 0) from observations"
        ).fetchone()
        return {
            "queue": counts,
            "per_day": self.queue.per_day(),
            "rates": {
                s: (counts[s] / decided if decided else None)
                for s in ("confirmed", "corrected", "false_positive")
            },
            "observations": int(obs[0]),
            "auto_labelled": int(obs[1]),
            "coverage": (int(obs[1]) / int(obs[0])) if obs[0] else None,
        }

    def threshold_curve(
        self,
        taxonomy: str | None = None,
        label: str | None = None,
        threshold: float | None = None,
        margin: float | None = None,
        limit: int = CURVE_OBSERVATIONS,
    ) -> dict[str, Any]:
        """What moving the threshold of a taxonomy or class would do (see ``curve``),
        from the last ``limit`` identifications and every reviewed item whose best
        candidate is in it; around the threshold and margin in force unless given.

        Raises:
            IdentifyError: a threshold or margin out of range.
        """
        if label is not None:
            taxonomy = self.ident.taxonomy_of.get(label, taxonomy or DEFAULT_TAXONOMY)

        def wanted(top: str | None) -> bool:
            if label is not None:
                return top == label
            tax = self.ident.taxonomy_of.get(top or "", DEFAULT_TAXONOMY)
            return taxonomy is None or tax == taxonomy

        reviewed = [
            (score, mar, status != "false_positive" and top == final)
            for _, score, mar, top, status, final in self.queue.outcomes()
            if wanted(top)
        ]
        observed = [
            (score, mar) for top, score, mar in self.store.recent_scores(limit) if wanted(top)
        ]
        t = self.ident.thresholds
        in_force = (
            t.for_class(label, taxonomy or DEFAULT_TAXONOMY)
            if label is not None
            else t.for_taxonomy(taxonomy or DEFAULT_TAXONOMY)
        )
        thr = _checked(threshold, "threshold", THRESHOLD_RANGE)
        mar = _checked(margin, "margin", MARGIN_RANGE)
        thr, mar = (in_force[0] if thr is None else thr), (in_force[1] if mar is None else mar)
        return {
            "taxonomy": taxonomy,
            "label": label,
            "threshold": thr,
            "margin": mar,
            "observed": len(observed),
            "reviewed": len(reviewed),
            "points": [p.to_json() for p in threshold_curve(observed, reviewed, thr, mar)],
        }

    def crop_file(self, item_id: int) -> Path:
        """The crop image of a review item.

        Raises:
            NotFoundError: no such item, or its crop is gone.
        """
        item = self.queue.get(item_id)
        if not item.crop_path:
            raise NotFoundError(
                f"the picture of review item {item_id} is no longer kept "
                f"(review.keep_days: {self.project.config.review.keep_days})"
            )
        path = Path(item.crop_path)
        if not path.is_file():
            raise NotFoundError(f"the picture of review item {item_id} is missing")
        return path

    def crop_with_box(self, item_id: int) -> bytes:
        """A review item's picture with the box the object was found in drawn on it
        (JPEG; the picture as it is when the whole picture won).

        Raises:
            NotFoundError: no such item, or its picture is gone.
        """
        path = self.crop_file(item_id)
        item = self.queue.get(item_id)
        data = path.read_bytes()
        if item.box is None:
            return data
        picture = decode_image(data, f"review item {item_id}").copy()
        x0, y0, x1, y1 = item.box
        colour = (255, 200, 0) if item.region == "doubtful" else (0, 220, 0)
        width = max(1, round(max(picture.shape[:2]) / 160))
        cv2.rectangle(picture, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), colour, width)
        return encode_jpeg(picture, 90)

    # --- thresholds -----------------------------------------------------------------

    def _thresholds(self) -> Thresholds:
        base = resolve_thresholds(self.project.config, self.embedder.spec)
        return with_overrides(base, self.store.threshold_overrides())

    def thresholds(self) -> dict[str, Any]:
        """The thresholds in force: default, per taxonomy (for crops, and ``picture`` for
        whole pictures), per class (explicit values; None inherits), and the overrides."""
        t = self.ident.thresholds

        def pair(values: tuple[float, float]) -> dict[str, float]:
            return {"threshold": values[0], "margin": values[1]}

        taxonomies = {t_.name for t_ in self.project.config.taxonomies} | {DEFAULT_TAXONOMY}
        taxonomies |= set(t.by_taxonomy)
        return {
            "default": {
                **pair(t.default),
                "calibrated": t.calibrated,
                "picture": None if t.picture is None else pair(t.picture),
            },
            "taxonomies": {
                name: {
                    **pair(t.for_taxonomy(name)),
                    "picture": pair(t.for_taxonomy(name, picture=True)),
                }
                for name in sorted(taxonomies)
            },
            "classes": {
                label: {"threshold": thr, "margin": mar}
                for label, (thr, mar) in sorted(t.by_class.items())
            },
            "overrides": [
                {"scope": s, "name": n, "threshold": thr, "margin": mar}
                for s, n, thr, mar in self.store.threshold_overrides()
            ],
        }

    def set_threshold(
        self, scope: str, name: str, threshold: object = None, margin: object = None
    ) -> dict[str, Any]:
        """Set a taxonomy's or a class's threshold and/or margin; both None clears the
        override. Applies to the next query and persists.

        Raises:
            NotFoundError: no such taxonomy or class.
            IdentifyError: a value out of range.
        """
        if scope == "taxonomy":
            known = {t.name for t in self.project.config.taxonomies} | {DEFAULT_TAXONOMY}
        elif scope == "class":
            known = {c["label"] for c in self.classes()}
        else:
            raise IdentifyError("scope must be 'taxonomy' or 'class'")
        if name not in known:
            raise NotFoundError(f"no {scope} {name!r}")
        thr = _checked(threshold, "threshold", THRESHOLD_RANGE)
        mar = _checked(margin, "margin", MARGIN_RANGE)
        self.store.set_threshold_override(scope, name, thr, mar)
        self.ident.thresholds = self._thresholds()
        self._emit(
            {"type": "thresholds", "scope": scope, "name": name, "threshold": thr, "margin": mar}
        )
        return self.thresholds()

    def hubs(self) -> list[dict[str, Any]]:
        """Active references whose recent matches do not look alike (see ``hubs``), over
        the last ``HUB_WINDOW`` observations, with their current labels; recomputed at
        most every ``HUB_CACHE_S`` seconds."""
        now = self._clock()
        if self._hubs is None or now - self._hubs[0] >= HUB_CACHE_S:
            winners, vectors = self.store.recent_wins(self.embedder.spec.space_id, HUB_WINDOW)
            self._hubs = (now, find_hubs(winners, vectors))
        label_of = self.store.reference_labels([h.reference_id for h in self._hubs[1]])
        return [
            {
                "reference_id": h.reference_id,
                "label": label_of[h.reference_id],
                "matches": h.matches,
                "agreement": round(h.agreement, 3),
                "typical": round(h.typical, 3),
            }
            for h in self._hubs[1]
            if h.reference_id in label_of  # not one deleted since
        ]

    # --- storage --------------------------------------------------------------------

    def collect(self) -> Collected:
        """Apply the retention policy (``review.keep_days``) and remove orphan files."""
        return self.media.collect(self.project.config.review.keep_days)

    def storage(self) -> dict[str, int]:
        """Disk use: media files by kind, the database (with its write-ahead log) and
        the vector index."""
        db, index = self.project.db_path, self.ident.index.path
        sizes = {
            name: p.stat().st_size if p.exists() else 0
            for name, p in (
                ("database_bytes", db),
                ("database_wal_bytes", db.with_name(db.name + "-wal")),
                ("index_bytes", index),
            )
        }
        return {**self.media.usage(), **sizes}

    # --- health ---------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Model, index, classes, thresholds, queue and counters."""
        return {
            "project": self.project.name,
            "model": self.embedder.spec.model_id,
            "projection": self.embedder.spec.projection,
            "index_size": len(self.ident.index),
            "classes": len(set(self.ident.labels.values())),
            "thresholds": self.thresholds()["default"],
            "queue": self.queue.counts(),
            "identified": self.stats.identified,
            "queued": self.stats.queued,
            "gate_rejected": dict(self.stats.gate_rejected),
            "tracks": self.tracker.active,
            "uptime_s": round(time.monotonic() - self.stats.started, 1),
            "storage": self.storage(),
            "hubs": self.hubs(),
        }


def _checked(value: object, name: str, bounds: tuple[float, float]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdentifyError(f"{name} must be a number")
    if not bounds[0] <= value <= bounds[1]:  # exact for ints of any size, false for NaN
        raise IdentifyError(f"{name} must be between {bounds[0]} and {bounds[1]}")
    return float(value)
