"""Reference rows: the images that define the classes, their labels, renames and deletions."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from server.engine.catalog.store.base import StoreBase, now_iso


@dataclass(frozen=True)
class ReferenceRow:
    """An active reference image."""

    id: int
    path: str
    content_hash: str
    label: str
    taxonomy: str
    rarity: str | None
    source: str | None = None
    """The reference folder it was found in, or ``api`` / ``review`` for references
    added while the server runs (``identify index`` leaves those alone)."""


class ReferenceRows(StoreBase):
    """Reference images and class labels."""

    def active_references(self) -> list[ReferenceRow]:
        """All active reference rows, by id."""
        rows = self.db.execute(
            "select id, path, content_hash, label, taxonomy, rarity, source from images "
            "where kind = 'reference' and status = 'active' order by id"
        ).fetchall()
        return [ReferenceRow(*r) for r in rows]

    def references_by_id(self, ids: Collection[int]) -> dict[int, ReferenceRow]:
        """Those of ``ids`` that are active references, by id."""
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        rows = self.db.execute(
            "select id, path, content_hash, label, taxonomy, rarity, source from images "
            f"where id in ({marks}) and kind = 'reference' and status = 'active'",
            [int(i) for i in ids],
        ).fetchall()
        return {int(r[0]): ReferenceRow(*r) for r in rows}

    def reference_labels(self, ids: Sequence[int]) -> dict[int, str]:
        """Labels of those of ``ids`` that are active references."""
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        rows = self.db.execute(
            f"select id, label from images where id in ({marks}) and kind = 'reference' "
            "and status = 'active'",
            [int(i) for i in ids],
        ).fetchall()
        return {int(i): str(label) for i, label in rows}

    def add_reference(
        self,
        *,
        path: str,
        content_hash: str,
        label: str,
        taxonomy: str,
        rarity: str | None,
        source: str,
        width: int,
        height: int,
    ) -> int:
        """Insert a reference image row and return its id (inside the caller's
        transaction, as every ``put_*``)."""
        ts = now_iso()
        return self._insert(
            "images",
            {
                "kind": "reference",
                "path": path,
                "content_hash": content_hash,
                "label": label,
                "rarity": rarity,
                "taxonomy": taxonomy,
                "source": source,
                "width": width,
                "height": height,
                "status": "active",
                "created_at": ts,
                "updated_at": ts,
            },
        )

    def retire(self, ids: Iterable[int]) -> None:
        """Mark rows as removed (they stay in the database, out of the index); inside
        the caller's transaction."""
        ts = now_iso()
        self.db.conn.executemany(
            "update images set status = 'removed', updated_at = ? where id = ?",
            [(ts, image_id) for image_id in ids],
        )

    def relabel(self, image_id: int, label: str, taxonomy: str, rarity: str | None) -> None:
        """Change the label of a reference whose file did not change; inside the
        caller's transaction."""
        self.db.conn.execute(
            "update images set label = ?, taxonomy = ?, rarity = ?, updated_at = ? where id = ?",
            [label, taxonomy, rarity, now_iso(), image_id],
        )

    def aliases(self) -> dict[str, str]:
        """Renamed or merged labels: old label -> current label (chains resolved)."""
        raw = {a: b for a, b in self.db.execute("select from_label, to_label from label_aliases")}
        out = {}
        for start in raw:
            label, seen = start, {start}
            while label in raw and raw[label] not in seen:
                label = raw[label]
                seen.add(label)
            out[start] = label
        return out

    def rename_label(self, old: str, new: str) -> int:
        """Move every active reference of ``old`` to ``new`` and remember the alias, so
        ``identify index`` keeps the new name for files named after the old one.

        The class's threshold override moves along, unless ``new`` (a merge) has its
        own, which wins. Returns the number of references moved."""
        ts = now_iso()
        with self.transaction():
            cur = self.db.conn.execute(
                "update images set label = ?, updated_at = ? where kind = 'reference' "
                "and status = 'active' and label = ?",
                [new, ts, old],
            )
            self.db.conn.execute(
                "update or ignore threshold_overrides set name = ?, updated_at = ? "
                "where scope = 'class' and name = ?",
                [new, ts, old],
            )
            self.db.conn.execute(
                "delete from threshold_overrides where scope = 'class' and name = ?", [old]
            )
            for column in ("true_label", "predicted_label", "candidate_label"):
                self.db.conn.execute(
                    f"update annotations set {column} = ? where {column} = ?", [new, old]
                )
            self.db.conn.execute("delete from label_aliases where from_label = ?", [new])
            self.db.conn.execute(
                "insert or replace into label_aliases (from_label, to_label, created_at) "
                "values (?, ?, ?)",
                [old, new, ts],
            )
        return int(cur.rowcount)

    def delete_reference(self, image_id: int) -> None:
        """Remove a reference by a person's decision: ``identify index`` will not bring
        the same file back (unlike a file that vanished, which is merely retired)."""
        with self.transaction():
            self.mark_deleted(image_id)

    def mark_deleted(self, image_id: int) -> None:
        """``delete_reference``'s write alone, inside the caller's transaction."""
        self.db.conn.execute(
            "update images set status = 'deleted', updated_at = ? where id = ?",
            [now_iso(), image_id],
        )

    def deleted_files(self) -> set[tuple[str, str]]:
        """(path, content hash) of references a person deleted."""
        return {
            (p, h)
            for p, h in self.db.execute(
                "select path, content_hash from images where kind = 'reference' "
                "and status = 'deleted'"
            )
        }

    def class_counts(self) -> list[tuple[str, str, int]]:
        """Every class with active references: (label, taxonomy, references), by label."""
        rows = self.db.execute(
            "select label, min(taxonomy), count(*) from images where kind = 'reference' "
            "and status = 'active' group by label order by label"
        ).fetchall()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]
