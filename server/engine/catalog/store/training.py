"""Rows for training: the reviewed boxes an export is made of, and the model registry
(versions of embedders, projection heads and detectors, and each switch of the live one)."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from server.engine.catalog.store.base import StoreBase, now_iso
from server.engine.errors import NotFoundError


@dataclass(frozen=True)
class TrainingRow:
    """One annotation with the picture it was made on."""

    annotation_id: int
    type: str
    label: str | None
    """The true class (None: no class, as for a false positive)."""
    box: list[int] | None
    """In the stored picture; None: the whole picture."""
    path: str
    """The stored picture ('' once retention removed it)."""
    content_hash: str
    source: str | None
    track_id: str | None
    taxonomy: str | None
    created_at: str
    region_path: str | None = None
    """The thing's own crop, when one was kept (straightened, or cut at the resolution
    it came in)."""
    reference_id: int | None = None
    """The reference the annotation made of the crop (a unified taxonomy's label)."""


@dataclass(frozen=True)
class VersionRow:
    """One version of a model in the registry."""

    id: int
    kind: str
    """``embedder``, ``head`` or ``detector``."""
    name: str
    path: str | None
    """Its file, relative to the project file (None: an embedder with no file of ours)."""
    content_hash: str
    parent_id: int | None
    created_at: str
    training: dict[str, Any]
    metrics: dict[str, Any]


_VERSION_COLUMNS = "id, kind, name, path, content_hash, parent_id, created_at, training, metrics"


def _version(values: tuple[Any, ...]) -> VersionRow:
    id_, kind, name, path, content_hash, parent_id, created_at, training, metrics = values
    return VersionRow(
        id_,
        kind,
        name,
        path,
        content_hash,
        parent_id,
        created_at,
        json.loads(training or "{}"),
        json.loads(metrics or "{}"),
    )


class TrainingRows(StoreBase):
    """Reads for exports, and the registry's rows."""

    def training_rows(
        self,
        types: Collection[str],
        taxonomy: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[TrainingRow]:
        """Annotations of ``types`` (oldest first) with their pictures, filtered by
        taxonomy and creation time (``since`` included, ``until`` not)."""
        where = [f"a.type in ({', '.join('?' * len(types))})"]
        args: list[Any] = list(types)
        for clause, value in (
            ("a.taxonomy = ?", taxonomy),
            ("a.created_at >= ?", since),
            ("a.created_at < ?", until),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        rows = self.db.execute(
            "select a.id, a.type, a.true_label, a.box, coalesce(i.path, ''), "
            "coalesce(i.content_hash, ''), r.source, r.track_id, a.taxonomy, a.created_at, "
            "r.region_path, a.reference_id "
            "from annotations a join images i on i.id = a.image_id "
            "left join review r on r.id = a.review_id "
            f"where {' and '.join(where)} order by a.id",
            args,
        ).fetchall()
        return [
            TrainingRow(int(r[0]), r[1], r[2], json.loads(r[3]) if r[3] else None, *r[4:])
            for r in rows
        ]

    def annotated_classes(self, unnamed: str) -> list[str]:
        """Every class an annotation of an object ever named (``unnamed`` for an object
        with none), in the order each was first named, so that an export's class numbers
        stay put as classes are added."""
        rows = self.db.execute(
            "select coalesce(true_label, ?) from annotations "
            "where type in ('confirmed', 'corrected', 'missed') "
            "group by coalesce(true_label, ?) order by min(id)",
            [unnamed, unnamed],
        ).fetchall()
        return [r[0] for r in rows]

    def newest_annotation_at(self) -> str | None:
        """When the newest annotation was made (None: there is none)."""
        row = self.db.execute("select max(created_at) from annotations").fetchone()
        return None if row is None else row[0]

    # --- the registry --------------------------------------------------------------

    def add_version(
        self,
        kind: str,
        name: str,
        path: str | None,
        content_hash: str,
        parent_id: int | None,
        training: dict[str, Any],
        metrics: dict[str, Any],
    ) -> int:
        """Register a version (a file already registered, by content, keeps its row and
        its id is returned); inside the caller's transaction or on its own."""
        known = self.version_by_hash(kind, content_hash)
        if known is not None:
            return known.id
        with self.transaction():
            return self._insert(
                "model_versions",
                {
                    "kind": kind,
                    "name": name,
                    "path": path,
                    "content_hash": content_hash,
                    "parent_id": parent_id,
                    "created_at": now_iso(),
                    "training": json.dumps(training),
                    "metrics": json.dumps(metrics),
                },
            )

    def set_version_metrics(self, version_id: int, metrics: dict[str, Any]) -> None:
        """Replace a version's metrics."""
        with self.transaction():
            self.db.conn.execute(
                "update model_versions set metrics = ? where id = ?",
                [json.dumps(metrics), version_id],
            )

    def version(self, version_id: int) -> VersionRow:
        """One version.

        Raises:
            NotFoundError: no such version.
        """
        row = self.db.execute(
            f"select {_VERSION_COLUMNS} from model_versions where id = ?", [version_id]
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no model version {version_id}")
        return _version(row)

    def version_by_hash(self, kind: str, content_hash: str) -> VersionRow | None:
        """The version of ``kind`` with this content, if registered."""
        row = self.db.execute(
            f"select {_VERSION_COLUMNS} from model_versions where kind = ? and content_hash = ?",
            [kind, content_hash],
        ).fetchone()
        return None if row is None else _version(row)

    def versions(self, kind: str | None = None) -> list[VersionRow]:
        """Every version (of ``kind``), oldest first."""
        clause, args = ("where kind = ?", [kind]) if kind else ("", [])
        rows = self.db.execute(
            f"select {_VERSION_COLUMNS} from model_versions {clause} order by id", args
        ).fetchall()
        return [_version(r) for r in rows]

    def record_switch(self, kind: str, version_id: int, reason: str) -> None:
        """Note that ``version_id`` went live."""
        with self.transaction():
            self._insert(
                "model_switches",
                {
                    "kind": kind,
                    "version_id": version_id,
                    "switched_at": now_iso(),
                    "reason": reason,
                },
            )

    def switches(self, kind: str) -> list[tuple[int, str, str]]:
        """(version id, when, why) of each switch of ``kind``, newest first."""
        rows = self.db.execute(
            "select version_id, switched_at, coalesce(reason, '') from model_switches "
            "where kind = ? order by id desc",
            [kind],
        ).fetchall()
        return [(int(r[0]), r[1], r[2]) for r in rows]
