"""The project database: migrations, WAL, references, embeddings, features, observations."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from server.engine.catalog.store import MIGRATIONS, ReferenceRow, Store
from server.engine.errors import IdentifyError


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data" / "identify.db")
    yield s
    s.close()


def _ref(
    store: Store,
    label: str,
    path: str | None = None,
    taxonomy: str = "default",
    rarity: str | None = None,
) -> int:
    with store.db.conn:  # writes join the caller's transaction: commit this one
        return store.add_reference(
            path=path or f"/refs/{label}.jpg",
            content_hash=f"h-{label}",
            label=label,
            taxonomy=taxonomy,
            rarity=rarity,
            source="/refs",
            width=64,
            height=48,
        )


def _count(store: Store, table: str) -> int:
    return int(store.db.execute(f"select count(*) from {table}").fetchone()[0])


RESULT = {
    "label": "Dark Magician",
    "score": 0.91,
    "margin": 0.2,
    "matched": True,
    "reason": "matched",
    "candidates": [{"label": "Dark Magician", "score": 0.91}],
    "bbox": [1, 2, 30, 40],
}


# --- schema ----------------------------------------------------------------------------


def test_new_database_is_migrated_to_the_latest_user_version(store: Store) -> None:
    assert store.schema_version == len(MIGRATIONS) >= 1
    assert {"images", "embeddings", "features", "observations"} <= set(store.db.table_names())


def test_database_is_in_wal_mode(store: Store) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other = sqlite3.connect(store.path)  # persistent: a fresh connection sees WAL too
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()


def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.put_embedding(12345, "m", np.ones(4, np.float32))


def test_reopening_is_idempotent_and_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "identify.db"
    first = Store(path)
    ref_id = _ref(first, "Kuriboh")
    first.close()
    for _ in range(2):
        again = Store(path)
        assert again.schema_version == len(MIGRATIONS)
        assert [r.id for r in again.active_references()] == [ref_id]
        again.close()


def test_database_from_a_newer_identify_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "identify.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(IdentifyError, match="newer than this identify"):
        Store(path)


def test_garbage_file_at_the_db_path_is_an_identify_error(tmp_path: Path) -> None:
    path = tmp_path / "identify.db"
    path.write_bytes(b"this is not a database, just some text\n" * 200)
    with pytest.raises(IdentifyError, match="unreadable"):
        Store(path)
    assert path.read_bytes().startswith(b"this is not a database")  # left untouched


def test_db_path_that_is_a_folder_is_an_identify_error(tmp_path: Path) -> None:
    path = tmp_path / "identify.db"
    path.mkdir()
    with pytest.raises(IdentifyError):
        Store(path)


def test_data_dir_that_is_a_file_is_an_identify_error(tmp_path: Path) -> None:
    # data_dir pointed at an existing file by mistake: a clear error, not a traceback.
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("oops", encoding="utf-8")
    with pytest.raises(IdentifyError):
        Store(not_a_dir / "identify.db")


# --- references ------------------------------------------------------------------------


def test_add_reference_returns_ids_and_lists_active_rows_in_order(store: Store) -> None:
    a = _ref(store, "Dark Magician", taxonomy="cards", rarity="scr")
    b = _ref(store, "Kuriboh")
    assert b > a
    assert store.active_references() == [
        ReferenceRow(
            a,
            "/refs/Dark Magician.jpg",
            "h-Dark Magician",
            "Dark Magician",
            "cards",
            "scr",
            "/refs",
        ),
        ReferenceRow(b, "/refs/Kuriboh.jpg", "h-Kuriboh", "Kuriboh", "default", None, "/refs"),
    ]


def test_retired_references_leave_the_active_list_but_stay_in_the_db(store: Store) -> None:
    a, b, c = (_ref(store, n) for n in ("A", "B", "C"))
    store.retire([a, c])
    assert [r.id for r in store.active_references()] == [b]
    statuses = dict(store.db.execute("select id, status from images").fetchall())
    assert statuses == {a: "removed", b: "active", c: "removed"}


def test_relabel_changes_label_taxonomy_and_rarity(store: Store) -> None:
    a = _ref(store, "Old Name", rarity="ur")
    store.relabel(a, "New Name", "cards", None)
    (row,) = store.active_references()
    assert (row.id, row.label, row.taxonomy, row.rarity) == (a, "New Name", "cards", None)


def test_queries_are_not_listed_as_references(store: Store) -> None:
    _ref(store, "A")
    store.record_observation(
        path="q.jpg",
        content_hash="q",
        width=10,
        height=10,
        model_id="m",
        embedding=np.ones(4, np.float32),
        result=RESULT,
    )
    assert [r.label for r in store.active_references()] == ["A"]


# --- embeddings and features -----------------------------------------------------------


def test_embeddings_round_trip_per_model_id(store: Store) -> None:
    ids = [_ref(store, f"C{i}") for i in range(3)]
    rng = np.random.default_rng(0)
    small = rng.normal(size=(3, 8)).astype(np.float32)
    large = rng.normal(size=(3, 16)).astype(np.float32)
    for i, image_id in enumerate(ids):
        store.put_embedding(image_id, "model/small", small[i])
        if i < 2:
            store.put_embedding(image_id, "model/large", large[i])
    got_small = store.embeddings(ids, "model/small")
    got_large = store.embeddings(ids, "model/large")
    assert sorted(got_small) == ids
    assert sorted(got_large) == ids[:2]  # missing ids are absent
    for i, image_id in enumerate(ids):
        np.testing.assert_array_equal(got_small[image_id], small[i])
        assert got_small[image_id].dtype == np.float32
    np.testing.assert_array_equal(got_large[ids[1]], large[1])
    assert store.embeddings(ids, "model/unknown") == {}


def test_put_embedding_replaces_the_vector_of_the_same_model(store: Store) -> None:
    a = _ref(store, "A")
    store.put_embedding(a, "m", np.zeros(4, np.float32))
    store.put_embedding(a, "m", np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(store.embeddings([a], "m")[a], np.arange(4))
    assert _count(store, "embeddings") == 1


def test_embeddings_lookup_handles_more_ids_than_one_query_chunk(store: Store) -> None:
    n = 1200  # embeddings() queries in chunks of 500 ids
    store.db["images"].insert_all(
        {"kind": "reference", "status": "active", "created_at": "t"} for _ in range(n)
    )
    ids = [int(r[0]) for r in store.db.execute("select id from images order by id")]
    store.db["embeddings"].insert_all(
        {"image_id": i, "model_id": "m", "vector": np.full(2, i, np.float32).tobytes()} for i in ids
    )
    got = store.embeddings(ids, "m")
    assert len(got) == 1200
    assert got[ids[777]][0] == ids[777]


def test_features_round_trip(store: Store) -> None:
    a = _ref(store, "A")
    rng = np.random.default_rng(1)
    kps = rng.uniform(0, 100, size=(50, 2)).astype(np.float32)
    desc = rng.integers(0, 256, size=(50, 32), dtype=np.uint8)
    store.put_features(a, "orb", kps, desc, (64, 48))
    got = store.features(a, "orb")
    assert got is not None
    np.testing.assert_array_equal(got[0], kps)
    np.testing.assert_array_equal(got[1], desc)
    assert got[2] == (64, 48)
    assert store.features(a, "akaze") is None
    assert store.feature_ids("orb") == {a}
    assert store.feature_ids("akaze") == set()


def test_colour_layouts_round_trip_and_are_listed(store: Store) -> None:
    a, b = _ref(store, "A"), _ref(store, "B")
    blob = bytes(range(144))
    store.put_layout(a, blob, 1.5)
    assert store.layout(a) == (blob, 1.5) and store.layout(b) is None
    store.put_layout(a, blob[::-1], 0.75)  # replaced, not duplicated
    assert store.layout(a) == (blob[::-1], 0.75)
    assert store.layout_ids() == {a}


def test_a_reference_whose_evidence_fails_to_save_leaves_no_row(store: Store) -> None:
    """``identify index`` writes a reference and its evidence in one transaction: the
    writes themselves must not commit half of it (sqlite-utils' upsert did)."""
    with pytest.raises(sqlite3.Error), store.db.conn:
        a = store.add_reference(
            path="/refs/A.png",
            content_hash="h",
            label="A",
            taxonomy="default",
            rarity=None,
            source="/refs",
            width=4,
            height=4,
        )
        store.put_embedding(a, "m", np.ones(4, np.float32))
        store.put_layout(a, bytes(144), 1.0)
        store.put_features(
            a, "orb", np.zeros((1, 2), np.float32), np.zeros((1, 32), np.uint8), (object(), 1)
        )  # type: ignore[arg-type]  # cannot be bound
    assert store.active_references() == []
    assert (_count(store, "embeddings"), _count(store, "layouts")) == (0, 0)


def test_features_with_no_keypoints_round_trip_as_empty_arrays(store: Store) -> None:
    a = _ref(store, "Blank")
    store.put_features(
        a, "orb", np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), (64, 48)
    )
    got = store.features(a, "orb")
    assert got is not None
    assert got[0].shape == (0, 2) and got[1].shape == (0, 32)


# --- observations ----------------------------------------------------------------------


def test_record_observation_writes_image_embedding_and_observation(store: Store) -> None:
    vec = np.linspace(0, 1, 8, dtype=np.float32)
    image_id = store.record_observation(
        path="crops/q.jpg",
        content_hash="qh",
        width=30,
        height=40,
        model_id="m",
        embedding=vec,
        result=RESULT,
        kind="crop",
    )
    kind, path, label = store.db.execute(
        "select kind, path, label from images where id = ?", [image_id]
    ).fetchone()
    assert (kind, path, label) == ("crop", "crops/q.jpg", None)
    np.testing.assert_array_equal(store.embeddings([image_id], "m")[image_id], vec)
    obs = next(store.db["observations"].rows_where("image_id = ?", [image_id]))
    assert obs["label"] == "Dark Magician"
    assert obs["matched"] == 1
    assert obs["reason"] == "matched"
    assert obs["candidates"] == '[{"label": "Dark Magician", "score": 0.91}]'
    assert obs["bbox"] == "[1, 2, 30, 40]"


def test_failed_observation_leaves_no_orphan_image_or_embedding(store: Store) -> None:
    # The observation row fails (a NOT NULL-free but type-broken value: an object that
    # sqlite cannot bind) after the image row was written; one transaction means no row
    # survives.
    bad = {**RESULT, "reason": object()}
    with pytest.raises(sqlite3.Error):
        store.record_observation(
            path="q.jpg",
            content_hash="q",
            width=10,
            height=10,
            model_id="m",
            embedding=np.ones(4, np.float32),
            result=bad,
        )
    assert _count(store, "observations") == 0
    assert _count(store, "images") == 0
    assert _count(store, "embeddings") == 0


def test_numpy_scalars_in_results_are_stored_as_plain_numbers(store: Store) -> None:
    result = {**RESULT, "candidates": [{"label": "X", "score": np.float32(0.5)}]}
    store.record_observation(
        path="q.jpg",
        content_hash="q",
        width=10,
        height=10,
        model_id="m",
        embedding=np.ones(4, np.float32),
        result=result,
    )
    (cands,) = store.db.execute("select candidates from observations").fetchone()
    assert json.loads(cands) == [{"label": "X", "score": 0.5}]


# --- review queue, names, overrides (schema v2) ------------------------------------------


def test_recording_a_miss_writes_the_review_item_in_the_same_transaction(store: Store) -> None:
    from server.engine.catalog.store import QueueEntry

    result = {
        "label": None,
        "score": 0.41,
        "margin": 0.02,
        "matched": False,
        "reason": "below_threshold",
        "candidates": [{"label": "Kuriboh", "score": 0.41}, {"label": "A", "score": 0.39}],
    }
    rec = store.record(
        path="/media/c.jpg",
        content_hash="c",
        width=64,
        height=48,
        model_id="m",
        embedding=np.ones(4, np.float32),
        result=result,
        kind="crop",
        queue=QueueEntry(source="cam", taxonomy="cards", track_id="cam#1"),
    )
    assert rec.review_id is not None
    item = store.review_item(rec.review_id)
    assert (item.image_id, item.source, item.track_id, item.taxonomy) == (
        rec.image_id,
        "cam",
        "cam#1",
        "cards",
    )
    assert item.label == "Kuriboh" and item.status == "pending" and item.crop_path == "/media/c.jpg"


def test_a_review_item_is_resolved_exactly_once(store: Store) -> None:
    from server.engine.catalog.store import QueueEntry
    from server.engine.errors import ConflictError

    result = {
        "label": None,
        "score": 0.3,
        "margin": 0.0,
        "matched": False,
        "reason": "below_threshold",
        "candidates": [],
    }
    rec = store.record(
        path="p",
        content_hash="c",
        width=1,
        height=1,
        model_id="m",
        embedding=np.ones(4, np.float32),
        result=result,
        queue=QueueEntry(source="s", taxonomy="default"),
    )
    assert rec.review_id is not None
    assert store.resolve_item(rec.review_id, "corrected", "X", None).resolved_label == "X"
    with pytest.raises(ConflictError, match="already corrected"):
        store.resolve_item(rec.review_id, "skipped", None, None)
    assert store.review_counts()["corrected"] == 1 and store.pending_count() == 0


def test_renames_chain_and_move_active_references(store: Store) -> None:
    a = _ref(store, "Dark Magician")
    assert store.rename_label("Dark Magician", "DM") == 1
    assert store.rename_label("DM", "Dark Magician (LOB)") == 1
    assert store.aliases() == {"Dark Magician": "Dark Magician (LOB)", "DM": "Dark Magician (LOB)"}
    assert [r.label for r in store.active_references() if r.id == a] == ["Dark Magician (LOB)"]
    # Renaming back removes the loop instead of chasing it forever.
    store.rename_label("Dark Magician (LOB)", "Dark Magician")
    assert store.aliases()["DM"] == "Dark Magician"


def test_deleted_references_are_remembered_by_path_and_hash(store: Store) -> None:
    a = _ref(store, "A")
    store.delete_reference(a)
    assert store.active_references() == []
    assert store.deleted_files() == {("/refs/A.jpg", "h-A")}


def test_threshold_overrides_set_and_clear(store: Store) -> None:
    store.set_threshold_override("class", "A", 0.9, None)
    store.set_threshold_override("taxonomy", "cards", None, 0.1)
    assert store.threshold_overrides() == [
        ("class", "A", 0.9, None),
        ("taxonomy", "cards", None, 0.1),
    ]
    store.set_threshold_override("class", "A", None, None)
    assert store.threshold_overrides() == [("taxonomy", "cards", None, 0.1)]
