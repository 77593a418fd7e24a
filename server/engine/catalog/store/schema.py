"""The schema, as migrations applied in order (``PRAGMA user_version`` counts them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlite_utils


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
