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


def _m6(db: sqlite_utils.Database) -> None:
    # Every decision about a prediction, with the seeds' meaning (see ``loop.annotations``).
    db.table("annotations").create(
        {
            "id": int,
            "type": str,
            "image_id": int,
            "observation_id": int,
            "review_id": int,
            "predicted_label": str,
            "candidate_label": str,
            "true_label": str,
            "taxonomy": str,
            "box": str,
            "image_width": int,
            "image_height": int,
            "score": float,
            "margin": float,
            "reference_id": int,
            "author": str,
            "provenance": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"type", "image_id", "author", "created_at", "updated_at"},
        foreign_keys=[
            ("image_id", "images", "id"),
            ("observation_id", "observations", "id"),
            ("review_id", "review", "id"),
        ],
    )
    db.table("annotations").create_index(["created_at"])
    db.table("annotations").create_index(["review_id"])
    db.table("annotations").create_index(["type", "created_at"])
    db.table("images").create_index(["label", "created_at"])
    # What produced each prediction: embedder space, detector, thresholds in force.
    db.table("observations").add_column("provenance", str)
    # A queued accepted answer (an audit) keeps what was accepted.
    db.table("review").add_column("matched_label", str)
    # Decisions made before annotations existed become annotations. Every queued item
    # was a miss (its prediction: unknown), so a label of a class known then corrects it
    # and a new class (or the old "none of these", now ``unknown``) confirms it.
    db.execute(
        "insert into annotations (type, image_id, observation_id, review_id, "
        "predicted_label, candidate_label, true_label, taxonomy, box, score, margin, "
        "reference_id, author, provenance, created_at, updated_at) "
        "select case when r.resolved_label is not null and exists (select 1 from images i "
        "where i.kind = 'reference' and i.label = r.resolved_label "
        "and i.created_at <= r.created_at) then 'corrected' else 'confirmed' end, "
        "r.image_id, r.observation_id, r.id, null, r.label, r.resolved_label, r.taxonomy, "
        "r.box, r.score, r.margin, r.reference_id, 'local', '{\"migrated\": true}', "
        "coalesce(r.resolved_at, r.created_at), coalesce(r.resolved_at, r.created_at) "
        "from review r where r.status in ('confirmed', 'corrected', 'false_positive')"
    )
    db.execute(
        "update review set status = (select a.type from annotations a where a.review_id = "
        "review.id) where status in ('confirmed', 'corrected', 'false_positive')"
    )


def _m7(db: sqlite_utils.Database) -> None:
    # What each answer was decided in and against (its auto-label), and the reference a
    # promotion made of it (separate taxonomies).
    db.table("observations").add_column("taxonomy", str)
    db.table("observations").add_column("reference_id", int)
    db.table("observations").add_column("promoted_id", int)
    db.table("observations").create_index(["taxonomy", "matched"])


def _m8(db: sqlite_utils.Database) -> None:
    # The files ``identify label`` has decided (by content: a second run skips them),
    # and re-applications, resumable from their cursor after a crash.
    db.table("labelled").create(
        {"content_hash": str, "path": str, "observations": str, "queued": int, "labelled_at": str},
        pk="content_hash",
    )
    db.table("reapplications").create(
        {
            "id": int,
            "status": str,
            "space": str,
            "cursor": int,
            "upto": int,
            "counts": str,
            "started_at": str,
            "finished_at": str,
        },
        pk="id",
        not_null={"status", "space", "cursor", "upto", "started_at"},
    )
    # The vector an answer was decided on, when it is not the stored embedding (a
    # located object: the window that matched, where the whole picture is stored).
    db.table("observations").add_column("decided_vector", bytes)


def _m9(db: sqlite_utils.Database) -> None:
    # Events worth telling, written with the change they report (the outbox); per
    # webhook, the last event it was given and the retry in progress; events a webhook
    # never took (dead letters); alerts raised and not yet cleared.
    db.execute(
        "create table outbox (id integer primary key autoincrement, type text not null,"
        " action text, body text not null, created_at text not null)"
    )
    db.table("webhook_cursors").create(
        {
            "webhook": str,
            "cursor": int,
            "attempts": int,
            "next_at": float,
            "last_error": str,
            "delivered": int,
            "updated_at": str,
        },
        pk="webhook",
        not_null={"cursor", "attempts", "delivered"},
        defaults={"attempts": 0, "delivered": 0},
    )
    db.table("dead_letters").create(
        {
            "id": int,
            "webhook": str,
            "event_id": int,
            "attempts": int,
            "error": str,
            "created_at": str,
            "resend": int,
            "delivered_at": str,
        },
        pk="id",
        not_null={"webhook", "event_id", "attempts", "created_at"},
        defaults={"resend": 0},
    )
    db.table("dead_letters").create_index(["webhook", "event_id"], unique=True)
    db.table("alerts").create(
        {"name": str, "value": float, "level": float, "raised_at": str, "message": str},
        pk="name",
    )


def _m10(db: sqlite_utils.Database) -> None:
    # Groupings of the pending unknowns: each run, its clusters, and where each item it
    # grouped lies on the 2-D map (``cluster_id`` null: it fell in no cluster).
    db.table("cluster_runs").create(
        {
            "id": int,
            "created_at": str,
            "items": int,
            "clusters": int,
            "noise": int,
            "seconds": float,
            "dims": int,
            "min_cluster_size": int,
            "pending": int,
        },
        pk="id",
    )
    db.table("clusters").create(
        {
            "id": int,
            "run_id": int,
            "medoid_item_id": int,
            "mean_similarity": float,
            "nearest_label": str,
            "nearest_score": float,
            "status": str,
            "label": str,
            "created_at": str,
        },
        pk="id",
        not_null={"run_id", "medoid_item_id", "status"},
        foreign_keys=[("run_id", "cluster_runs", "id")],
    )
    db.table("cluster_points").create(
        {"run_id": int, "item_id": int, "cluster_id": int, "x": float, "y": float, "dropped": int},
        not_null={"run_id", "item_id", "x", "y", "dropped"},
    )
    db.table("cluster_points").create_index(["cluster_id"])
    db.table("cluster_points").create_index(["run_id"])


def _m11(db: sqlite_utils.Database) -> None:
    # The model registry: each embedder, projection head and detector the project made
    # or used, as a version with its file's content hash, where it came from and how it
    # did; and every switch of the live version (a rollback goes back along them).
    db.table("model_versions").create(
        {
            "id": int,
            "kind": str,
            "name": str,
            "path": str,
            "content_hash": str,
            "parent_id": int,
            "created_at": str,
            "training": str,
            "metrics": str,
        },
        pk="id",
        not_null={"kind", "name", "content_hash", "created_at"},
        foreign_keys=[("parent_id", "model_versions", "id")],
    )
    db.table("model_versions").create_index(["kind", "content_hash"], unique=True)
    db.table("model_switches").create(
        {"id": int, "kind": str, "version_id": int, "switched_at": str, "reason": str},
        pk="id",
        not_null={"kind", "version_id", "switched_at"},
        foreign_keys=[("version_id", "model_versions", "id")],
    )


MIGRATIONS: Sequence[Callable[[sqlite_utils.Database], None]] = (
    _m1,
    _m2,
    _m3,
    _m4,
    _m5,
    _m6,
    _m7,
    _m8,
    _m9,
    _m10,
    _m11,
)
"""Schema migrations in order; ``PRAGMA user_version`` counts those applied."""
