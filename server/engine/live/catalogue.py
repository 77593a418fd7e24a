"""The reference catalogue while serving: classes and their references, adding one
(searchable by the very next query), importing a folder, removing, renaming, merging."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from server import contract
from server.engine.catalog.making import PreparedReference, prepare, write
from server.engine.catalog.vectors import LIVE_SOURCES, view_backgrounds
from server.engine.errors import ConflictError, IdentifyError, NotFoundError
from server.engine.live.context import Live
from server.engine.live.health import HubWatch
from server.engine.live.thresholds import ThresholdBook
from server.engine.loop.outbox import tell_added
from server.engine.project.config import DEFAULT_TAXONOMY
from server.engine.project.naming import clean_label, label_from_name
from server.engine.project.references import IMAGE_SUFFIXES

MAX_IMPORT_FILES = 1000
"""Most files one import adds."""
MAX_PATH_CHARS = 4096
"""Longest path an import takes (Linux's PATH_MAX)."""


class Catalogue:
    """Reference and class operations of one open project."""

    def __init__(self, live: Live, thresholds: ThresholdBook, hubs: HubWatch) -> None:
        self.live = live
        self.thresholds = thresholds
        self.hub_watch = hubs
        self._backgrounds = view_backgrounds()

    def classes(self) -> list[contract.ClassInfo]:
        """Every class with its taxonomy and number of references."""
        hubs = {h["label"] for h in self.hub_watch.hubs()}
        return [
            {"label": label, "taxonomy": tax, "references": n, "hub": label in hubs}
            for label, tax, n in self.live.store.class_counts()
        ]

    def references(self, label: str) -> list[contract.ReferenceInfo]:
        """The references of one class.

        Raises:
            NotFoundError: no such class.
        """
        rows = [r for r in self.live.store.active_references() if r.label == label]
        if not rows:
            raise NotFoundError(f"no class {label!r}")
        hubs = {h["reference_id"] for h in self.hub_watch.hubs()}
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
        row = next((r for r in self.live.store.active_references() if r.id == ref_id), None)
        if row is None:
            raise NotFoundError(f"no reference {ref_id}")
        path = Path(row.path).resolve()
        project = self.live.project
        roots = [s.path.resolve() for s in project.config.references]
        roots.append((project.data_dir / "media").resolve())
        if not any(path.is_relative_to(r) for r in roots) or not path.is_file():
            raise NotFoundError(f"the image of reference {ref_id} is not available")
        return path

    def prepare(self, data: bytes, label: object, taxonomy: str | None = None) -> PreparedReference:
        """The heavy, read-only half of adding a reference (see ``making.prepare``):
        touches neither the database nor the index, so it runs on a worker while the
        engine thread goes on identifying.

        Raises:
            ImageRejected: not a usable image, or one the quality gate refuses.
            IdentifyError: a bad label or an undeclared taxonomy.
        """
        if taxonomy is not None:
            self._declared_taxonomy(taxonomy)
        live = self.live
        return prepare(live.project, live.embedder, data, label, taxonomy, self._backgrounds)

    def commit(
        self,
        prepared: PreparedReference,
        source: str = "api",
        also: Callable[[int], None] | None = None,
    ) -> contract.ReferenceAdded:
        """The engine thread's half: store the file and the rows in one go, add the
        vector to the index; searchable by the very next query. ``also(reference id)``
        writes more in the same transaction (a review label); if it raises, nothing of
        the reference is written either."""
        live, name = self.live, prepared.label
        tax = self._taxonomy_for(name, prepared.taxonomy)
        new_class = name not in live.ident.taxonomy_of

        def and_tell(ref_id: int) -> None:
            tell_added(live.store, ref_id, name, tax, new_class, live.emit)
            if also is not None:
                also(ref_id)

        ref_id = write(
            live.project, live.embedder, live.store, live.media, prepared, tax, source, and_tell
        )
        live.ident.index.add([ref_id], prepared.evidence.vector[None, :])
        live.ident.set_reference(ref_id, name, tax)
        return {"id": ref_id, "label": name, "taxonomy": tax}

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
        files = _image_files(Path(path).expanduser(), path)
        if not files:
            raise IdentifyError(f"no image files in {path}")
        if len(files) > MAX_IMPORT_FILES:
            raise IdentifyError(f"{len(files)} files; import at most {MAX_IMPORT_FILES} at once")
        naming = self.live.project.config.naming
        return [
            (f, label if label is not None else label_from_name(f.stem, naming).label)
            for f in files
        ]

    def remove(self, ref_id: int, also: Callable[[], None] | None = None) -> None:
        """Take a reference out of the index for good (``identify index`` will not bring
        its file back); ``also()`` writes more in the same transaction.

        Raises:
            NotFoundError: no such active reference.
        """
        live = self.live
        rows = live.store.references_by_id([ref_id])
        if ref_id not in rows:
            raise NotFoundError(f"no reference {ref_id}")
        with live.store.transaction():
            live.store.mark_deleted(ref_id)
            self._tell_reference("removed", ref_id, rows[ref_id].label)
            if also is not None:
                also()
        live.media.forget(rows[ref_id].path, ref_id)
        live.ident.index.remove([ref_id])
        live.ident.drop_references([ref_id])

    def relabel(self, ref_id: int, label: str, also: Callable[[], None] | None = None) -> None:
        """Move one reference to another class (``label``, checked); ``also()`` writes
        more in the same transaction.

        Raises:
            NotFoundError: no such active reference.
        """
        live = self.live
        row = live.store.references_by_id([ref_id]).get(ref_id)
        if row is None:
            raise NotFoundError(f"no reference {ref_id}")
        tax = self._taxonomy_for(label, None)
        with live.store.transaction():
            live.store.relabel(ref_id, label, tax, row.rarity)
            self._tell_reference("relabelled", ref_id, label)
            if also is not None:
                also()
        live.ident.drop_references([ref_id])
        live.ident.set_reference(ref_id, label, tax, row.rarity)
        self.thresholds.refresh()

    def _tell_reference(
        self, action: Literal["added", "removed", "relabelled"], ref_id: int, label: str
    ) -> None:
        self.live.tell(
            {
                "type": "references",
                "action": action,
                "id": ref_id,
                "label": label,
                "at": time.time(),
            }
        )

    def rename_class(self, old: str, new: object) -> contract.ClassRenamed:
        """Rename a class.

        Raises:
            NotFoundError: no class ``old``.
            ConflictError: ``new`` is taken (merge instead).
        """
        name = clean_label(new)
        labels = self._labels()
        if old not in labels:
            raise NotFoundError(f"no class {old!r}")
        if name in labels and name != old:
            raise ConflictError(f"class {name!r} exists; merge {old!r} into it instead")
        with self.live.store.transaction():
            moved = self.live.store.rename_label(old, name)
            self.live.tell(
                {
                    "type": "references",
                    "action": "renamed",
                    "from": old,
                    "to": name,
                    "at": time.time(),
                }
            )
        self.live.ident.rename_class(old, name)
        self.thresholds.refresh()
        return {"label": name, "references": moved}

    def merge_classes(self, sources: Sequence[str], into: str) -> contract.ClassesMerged:
        """Move every reference of ``sources`` into the existing class ``into``.

        Raises:
            NotFoundError: a class does not exist.
        """
        labels = self._labels()
        missing = [s for s in [*sources, into] if s not in labels]
        if missing:
            raise NotFoundError(f"no class {missing[0]!r}")
        moved = 0
        with self.live.store.transaction():
            for old in sources:
                if old != into:
                    moved += self.live.store.rename_label(old, into)
            self.live.tell(
                {
                    "type": "references",
                    "action": "merged",
                    "from": list(sources),
                    "to": into,
                    "at": time.time(),
                }
            )
        for old in sources:
            if old != into:
                self.live.ident.rename_class(old, into)
        self.thresholds.refresh()
        return {"label": into, "moved": moved}

    def _labels(self) -> set[str]:
        return {label for label, _, _ in self.live.store.class_counts()}

    def _declared_taxonomy(self, taxonomy: str) -> str:
        known = self.live.taxonomies()
        if taxonomy not in known:
            raise IdentifyError(
                f"taxonomy {taxonomy[:100]!r} is not declared in the project "
                f"(declared: {', '.join(sorted(known))})"
            )
        return taxonomy

    def _taxonomy_for(self, label: str, taxonomy: str | None) -> str:
        if taxonomy is not None:
            return self._declared_taxonomy(taxonomy)
        return self.live.ident.taxonomy_of.get(label, DEFAULT_TAXONOMY)


def _image_files(root: Path, asked: str) -> list[Path]:
    """One file, or the image files directly in a folder (hidden ones left out)."""
    try:
        if root.is_file():
            return [root]
        if root.is_dir():
            return sorted(
                p
                for p in root.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
            )
    except OSError as exc:
        raise IdentifyError(f"cannot read {asked[:200]!r}: {exc.strerror or exc}") from None
    raise NotFoundError(f"no file or folder {asked[:200]!r} on the server")
