"""The project's SQLite database (sqlite-utils, WAL, versioned migrations).

Every image or crop the system has seen is a row of ``images``; the vector index keys
are these row ids. Embeddings are stored per model so the index can be rebuilt, or the
model switched back, without re-reading a single image.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from server.engine.errors import IdentifyError


def _jsonable(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def now_iso() -> str:
    """UTC time as ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _m1(db: sqlite_utils.Database) -> None:
    db.table("images").create(
        {
            "id": int,
            "kind": str,
            "path": str,
            "content_hash": str,
            "label": str,
            "rarity": str,
            "taxonomy": str,
            "source": str,
            "width": int,
            "height": int,
            "status": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"kind", "status", "created_at"},
        defaults={"status": "active"},
    )
    db.table("images").create_index(["kind", "status"])
    db.table("images").create_index(["path"])
    db.table("embeddings").create(
        {"image_id": int, "model_id": str, "vector": bytes},
        pk=("image_id", "model_id"),
        foreign_keys=[("image_id", "images", "id")],
    )
    db.table("features").create(
        {
            "image_id": int,
            "kind": str,
            "keypoints": bytes,
            "descriptors": bytes,
            "width": int,
            "height": int,
        },
        pk=("image_id", "kind"),
        foreign_keys=[("image_id", "images", "id")],
    )
    db.table("observations").create(
        {
            "id": int,
            "image_id": int,
            "model_id": str,
            "label": str,
            "score": float,
            "margin": float,
            "matched": int,
            "reason": str,
            "candidates": str,
            "bbox": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("image_id", "images", "id")],
    )


def _m2(db: sqlite_utils.Database) -> None:
    # The review queue: one row per queued miss, pointing at its crop's image row.
    db.table("review").create(
        {
            "id": int,
            "image_id": int,
            "observation_id": int,
            "reason": str,
            "taxonomy": str,
            "source": str,
            "track_id": str,
            "label": str,
            "score": float,
            "margin": float,
            "candidates": str,
            "status": str,
            "resolved_label": str,
            "reference_id": int,
            "created_at": str,
            "resolved_at": str,
        },
        pk="id",
        not_null={"image_id", "reason", "status", "created_at"},
        defaults={"status": "pending"},
        foreign_keys=[("image_id", "images", "id"), ("observation_id", "observations", "id")],
    )
    db.table("review").create_index(["status", "id"])
    # Thresholds set through the API, applied over the project file's.
    db.table("threshold_overrides").create(
        {"scope": str, "name": str, "threshold": float, "margin": float, "updated_at": str},
        pk=("scope", "name"),
    )
    # Class renames and merges; ``identify index`` applies them to labels from file names.
    db.table("label_aliases").create(
        {"from_label": str, "to_label": str, "created_at": str}, pk="from_label"
    )


def _m3(db: sqlite_utils.Database) -> None:
    # Colour layouts of references (see ``appearance``), for the second stage.
    db.table("layouts").create(
        {"image_id": int, "layout": bytes, "aspect": float},
        pk="image_id",
        foreign_keys=[("image_id", "images", "id")],
    )


def _m4(db: sqlite_utils.Database) -> None:
    # A review item's picture is stored small, with the box the object was found in
    # (None: the whole picture won), how sure that box is, and how many times the same
    # picture from the same source was seen while the item waited.
    db.table("review").add_column("box", str)
    db.table("review").add_column("region", str)
    db.table("review").add_column("seen", int, not_null_default=1)
    # The region cut from the picture as it came, when the small stored picture holds
    # it at too few pixels to make a good reference of.
    db.table("review").add_column("region_path", str)
    db.table("images").create_index(["content_hash"])


def _m5(db: sqlite_utils.Database) -> None:
    # The hub check reads the latest observations of one embedding space.
    db.table("observations").create_index(["model_id", "id"])


MIGRATIONS: Sequence[Callable[[sqlite_utils.Database], None]] = (_m1, _m2, _m3, _m4, _m5)
"""Schema migrations in order; ``PRAGMA user_version`` counts those applied."""


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


class Store:
    """Typed access to the project database. One writer at a time (see DESIGN.md)."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise IdentifyError(f"database {path} is unreadable: {exc}") from None
        self.path = path

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise IdentifyError(
                f"database schema v{version} is newer than this identify (v{len(MIGRATIONS)})"
            )
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db.conn:
                step(self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        """Number of migrations applied."""
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        self.db.conn.close()

    def _insert(self, table: str, row: dict[str, Any], replace_on: Sequence[str] = ()) -> int:
        """Insert one row (updating the row with the same ``replace_on`` key, if any) in
        one statement, inside the caller's transaction (``with store.db.conn:``), and
        return its rowid. Plain SQL rather than sqlite-utils' insert and upsert, which
        look the table's schema up on every call (most of ``identify index``'s writing
        time, about 3 ms a reference) and commit on their own."""
        cols = ", ".join(row)
        sql = f"insert into {table} ({cols}) values ({', '.join('?' * len(row))})"
        if replace_on:
            update = ", ".join(f"{c} = excluded.{c}" for c in row if c not in replace_on)
            sql += f" on conflict ({', '.join(replace_on)}) do update set {update}"
        return int(self.db.conn.execute(sql, list(row.values())).lastrowid or 0)

    # --- references -----------------------------------------------------------------

    def active_references(self) -> list[ReferenceRow]:
        """All active reference rows, by id."""
        rows = self.db.execute(
            "select id, path, content_hash, label, taxonomy, rarity, source from images "
            "where kind = 'reference' and status = 'active' order by id"
        ).fetchall()
        return [ReferenceRow(*r) for r in rows]

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

    # --- embeddings and features ----------------------------------------------------

    def put_embedding(self, image_id: int, model_id: str, vector: np.ndarray) -> None:
        """Store (or replace) one image's embedding under a model id."""
        self._insert(
            "embeddings",
            {
                "image_id": image_id,
                "model_id": model_id,
                "vector": np.asarray(vector, np.float32).tobytes(),
            },
            replace_on=("image_id", "model_id"),
        )

    def embeddings(self, ids: Sequence[int], model_id: str) -> dict[int, np.ndarray]:
        """Stored embeddings of ``ids`` under ``model_id`` (missing ids are absent)."""
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for image_id, blob in self.db.execute(
                f"select image_id, vector from embeddings where model_id = ? "
                f"and image_id in ({marks})",
                [model_id, *chunk],
            ):
                out[int(image_id)] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_features(
        self,
        image_id: int,
        kind: str,
        keypoints: np.ndarray,
        descriptors: np.ndarray,
        size: tuple[int, int],
    ) -> None:
        """Store local features (keypoints (N, 2) float32, descriptors (N, D) uint8)."""
        self._insert(
            "features",
            {
                "image_id": image_id,
                "kind": kind,
                "keypoints": np.asarray(keypoints, np.float32).tobytes(),
                "descriptors": np.asarray(descriptors, np.uint8).tobytes(),
                "width": size[0],
                "height": size[1],
            },
            replace_on=("image_id", "kind"),
        )

    def features(
        self, image_id: int, kind: str
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
        """Stored local features of one image (keypoints, descriptors, and the size of
        the image they were found in), or None."""
        row = self.db.execute(
            "select keypoints, descriptors, width, height from features"
            " where image_id = ? and kind = ?",
            [image_id, kind],
        ).fetchone()
        if row is None:
            return None
        kps = np.frombuffer(row[0], dtype=np.float32).reshape(-1, 2)
        desc = (
            np.frombuffer(row[1], dtype=np.uint8).reshape(len(kps), -1)
            if len(kps)
            else np.zeros((0, 32), np.uint8)
        )
        return kps, desc, (int(row[2]), int(row[3]))

    def feature_ids(self, kind: str) -> set[int]:
        """Ids of images with stored features of ``kind``."""
        return {
            int(r[0])
            for r in self.db.execute("select image_id from features where kind = ?", [kind])
        }

    def put_layout(self, image_id: int, layout: bytes, aspect: float) -> None:
        """Store (or replace) one image's colour layout (``appearance.Layout.to_bytes``)
        and the aspect (width / height) of the picture it describes."""
        self._insert(
            "layouts",
            {"image_id": image_id, "layout": layout, "aspect": aspect},
            replace_on=("image_id",),
        )

    def layout(self, image_id: int) -> tuple[bytes, float] | None:
        """One image's stored colour layout and aspect, or None."""
        row = self.db.execute(
            "select layout, aspect from layouts where image_id = ?", [image_id]
        ).fetchone()
        return None if row is None else (bytes(row[0]), float(row[1]))

    def layout_ids(self) -> set[int]:
        """Ids of images with a stored colour layout."""
        return {int(r[0]) for r in self.db.execute("select image_id from layouts")}

    # --- observations ---------------------------------------------------------------

    def record_observation(
        self,
        *,
        path: str,
        content_hash: str,
        width: int,
        height: int,
        model_id: str,
        embedding: np.ndarray,
        result: dict[str, Any],
        kind: str = "query",
    ) -> int:
        """Store a query image (or crop), its embedding and the decision made about it."""
        return self.record(
            path=path,
            content_hash=content_hash,
            width=width,
            height=height,
            model_id=model_id,
            embedding=embedding,
            result=result,
            kind=kind,
        ).image_id

    def record(
        self,
        *,
        path: str,
        content_hash: str,
        width: int,
        height: int,
        model_id: str,
        embedding: np.ndarray,
        result: dict[str, Any],
        kind: str = "query",
        queue: QueueEntry | None = None,
    ) -> Recorded:
        """Store an image, its embedding, the decision and (for a miss) its review item.

        All rows are written in one transaction: a crash leaves all or none of them.
        """
        ts = now_iso()
        # Serialise first, then write the rows in one transaction with plain SQL:
        # sqlite-utils commits after each insert, which could leave an orphan image row.
        candidates = json.dumps(result["candidates"], default=_jsonable)
        bbox = json.dumps(result.get("bbox"), default=_jsonable)
        vector = np.asarray(embedding, np.float32).tobytes()
        conn = self.db.conn
        review_id: int | None = None
        with conn:
            cur = conn.execute(
                "insert into images (kind, path, content_hash, width, height, source, status, "
                "created_at, updated_at) values (?, ?, ?, ?, ?, ?, 'active', ?, ?)",
                [kind, path, content_hash, width, height, queue.source if queue else None, ts, ts],
            )
            image_id = int(cur.lastrowid or 0)
            conn.execute(
                "insert into embeddings (image_id, model_id, vector) values (?, ?, ?)",
                [image_id, model_id, vector],
            )
            cur = conn.execute(
                "insert into observations (image_id, model_id, label, score, margin, matched, "
                "reason, candidates, bbox, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    image_id,
                    model_id,
                    result["label"],
                    float(result["score"]),
                    float(result["margin"]),
                    int(bool(result["matched"])),
                    result.get("reason", ""),
                    candidates,
                    bbox,
                    ts,
                ],
            )
            observation_id = int(cur.lastrowid or 0)
            if queue is not None:
                top = result["candidates"][0] if result["candidates"] else None
                cur = conn.execute(
                    "insert into review (image_id, observation_id, reason, taxonomy, source, "
                    "track_id, label, score, margin, candidates, status, created_at, box, "
                    "region, region_path) values "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                    [
                        image_id,
                        observation_id,
                        result.get("reason", ""),
                        queue.taxonomy,
                        queue.source,
                        queue.track_id,
                        top["label"] if top else None,
                        float(result["score"]),
                        float(result["margin"]),
                        candidates,
                        ts,
                        json.dumps(queue.box) if queue.box is not None else None,
                        queue.region,
                        queue.region_path,
                    ],
                )
                review_id = int(cur.lastrowid or 0)
        return Recorded(image_id, observation_id, review_id)

    def recent_scores(self, limit: int) -> list[tuple[str | None, float, float]]:
        """The last ``limit`` observations: (best candidate's label, score, margin)."""
        rows = self.db.execute(
            "select candidates, score, margin from observations order by id desc limit ?",
            [limit],
        ).fetchall()
        out = []
        for candidates, score, margin in rows:
            top = json.loads(candidates or "[]")
            out.append((top[0]["label"] if top else None, float(score), float(margin)))
        return out

    def recent_wins(self, model_id: str, limit: int) -> tuple[list[int | None], np.ndarray]:
        """The last ``limit`` observations in one embedding space: the reference that won
        each (None: nothing was accepted) and its stored embedding, as rows (those of
        the most common dimension: a space holds one)."""
        rows = self.db.execute(
            "select o.matched, o.candidates, e.vector from observations o join embeddings e "
            "on e.image_id = o.image_id and e.model_id = o.model_id where o.model_id = ? "
            "order by o.id desc limit ?",
            [model_id, limit],
        ).fetchall()
        dims = Counter(len(r[2]) for r in rows)
        if not dims:
            return [], np.zeros((0, 0), np.float32)
        size = dims.most_common(1)[0][0]
        winners: list[int | None] = []
        vectors = []
        for matched, candidates, vector in rows:
            if len(vector) != size:
                continue
            top = json.loads(candidates or "[]") if matched else []
            winners.append(int(top[0]["reference_id"]) if top else None)
            vectors.append(np.frombuffer(vector, np.float32))
        return winners, np.stack(vectors)

    def pending_duplicate(self, content_hash: str, source: str) -> int | None:
        """The pending review item holding this very picture from this source, if any."""
        row = self.db.execute(
            "select r.id from review r join images i on i.id = r.image_id "
            "where i.content_hash = ? and r.source = ? and r.status = 'pending' "
            "order by r.id limit 1",
            [content_hash, source],
        ).fetchone()
        return None if row is None else int(row[0])

    def seen_again(self, review_id: int) -> None:
        """Count one more sighting of a pending item's picture (a duplicate)."""
        with self.db.conn:
            self.db.conn.execute("update review set seen = seen + 1 where id = ?", [review_id])

    def path_in_use(self, path: str, but: int) -> bool:
        """Whether a row other than ``but`` that still needs it points at ``path``: an
        active reference, or an image with a review item."""
        row = self.db.execute(
            "select 1 from images i where i.path = ? and i.id != ? and "
            "((i.kind = 'reference' and i.status = 'active') or "
            "exists (select 1 from review r where r.image_id = i.id)) "
            "union all select 1 from review where region_path = ? and image_id != ? "
            "limit 1",
            [path, but, path, but],
        ).fetchone()
        return row is not None

    def expired_pictures(self, cutoff: str) -> list[tuple[int, list[str]]]:
        """(image id, paths: its picture and region, when kept) of the items decided or
        skipped before ``cutoff`` (ISO time) whose files are still kept."""
        return [
            (int(i), [p for p in (path, region) if p])
            for i, path, region in self.db.execute(
                "select i.id, i.path, r.region_path from review r join images i "
                "on i.id = r.image_id where r.status != 'pending' and r.resolved_at < ? "
                "and (i.path != '' or r.region_path is not null)",
                [cutoff],
            )
        ]

    def forget_picture(self, image_id: int) -> None:
        """Record that an image's files are no longer kept (its rows stay)."""
        with self.db.conn:
            self.db.conn.execute(
                "update images set path = '', updated_at = ? where id = ?", [now_iso(), image_id]
            )
            self.db.conn.execute(
                "update review set region_path = null where image_id = ?", [image_id]
            )

    def media_paths(self) -> set[str]:
        """Paths some row still needs: active references and review items' pictures
        and regions."""
        paths = {
            str(p)
            for (p,) in self.db.execute(
                "select path from images where path != '' and "
                "((kind = 'reference' and status = 'active') or "
                "id in (select image_id from review))"
            )
        }
        return paths | {
            str(p)
            for (p,) in self.db.execute(
                "select region_path from review where region_path is not null"
            )
        }

    # --- class names ----------------------------------------------------------------

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
        with self.db.conn:
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
        self.db.execute(
            "update images set status = 'deleted', updated_at = ? where id = ?",
            [now_iso(), image_id],
        )
        self.db.conn.commit()

    def deleted_files(self) -> set[tuple[str, str]]:
        """(path, content hash) of references a person deleted."""
        return {
            (p, h)
            for p, h in self.db.execute(
                "select path, content_hash from images where kind = 'reference' "
                "and status = 'deleted'"
            )
        }

    # --- threshold overrides --------------------------------------------------------

    def threshold_overrides(self) -> list[tuple[str, str, float | None, float | None]]:
        """(scope, name, threshold, margin) set through the API; scope is ``taxonomy``
        or ``class``."""
        return [
            (a, b, c, d)
            for a, b, c, d in self.db.execute(
                "select scope, name, threshold, margin from threshold_overrides order by scope, name"
            )
        ]

    def set_threshold_override(
        self, scope: str, name: str, threshold: float | None, margin: float | None
    ) -> None:
        """Set (or, with both values None, clear) one override."""
        with self.db.conn:
            if threshold is None and margin is None:
                self.db.conn.execute(
                    "delete from threshold_overrides where scope = ? and name = ?", [scope, name]
                )
            else:
                self.db.conn.execute(
                    "insert or replace into threshold_overrides values (?, ?, ?, ?, ?)",
                    [scope, name, threshold, margin, now_iso()],
                )


@dataclass(frozen=True)
class QueueEntry:
    """Where a queued miss came from."""

    source: str
    taxonomy: str
    track_id: str | None = None
    box: Sequence[int] | None = None
    """Where the object is in the stored picture; None: the whole picture."""
    region: str = "whole"
    """``whole``, ``verified`` (the reference's geometry was found there) or ``doubtful``
    (only where the picture looked most like something known)."""
    region_path: str | None = None
    """The region at the resolution it came in, when the stored picture is too small."""


@dataclass(frozen=True)
class Recorded:
    """Row ids written by ``Store.record``."""

    image_id: int
    observation_id: int
    review_id: int | None = None
