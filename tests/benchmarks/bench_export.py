"""Export at scale: 10,000 annotations (5,000 stored pictures of 384 x 288 px, two
reviewed boxes each, 200 classes) in a real project database, exported as YOLO and as
COCO (``training.dataset.gather`` and ``training.export.write``, as ``identify export``
runs them): seconds for each, and the pictures and boxes written::

    python -m tests.benchmarks.bench_export
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from server.engine.catalog.store import Store, now_iso
from server.engine.training.dataset import gather
from server.engine.training.export import write
from server.engine.vision.images import content_hash, encode_jpeg
from tests.conftest import REPO


def make_store(root: Path, pictures: int, seed: int = 0) -> Store:
    """A database whose annotations point at real JPEG files, as reviews leave them."""
    rng = np.random.default_rng(seed)
    store = Store(root / "identify.db")
    ts = now_iso()
    with store.transaction():
        for i in range(pictures):
            picture = rng.integers(0, 255, (288, 384, 3), dtype=np.uint8)
            data = encode_jpeg(picture, 75)
            digest = content_hash(data)
            path = root / "media" / digest[:2] / f"{digest}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            for k in range(2):
                image_id = store.db.conn.execute(
                    "insert into images (kind, path, content_hash, width, height, status, "
                    "created_at, updated_at) values ('crop', ?, ?, 384, 288, 'active', ?, ?)",
                    [str(path), digest, ts, ts],
                ).lastrowid
                x = 20 + 180 * k
                store.db.conn.execute(
                    "insert into annotations (type, image_id, true_label, box, image_width, "
                    "image_height, author, provenance, created_at, updated_at) values "
                    "('corrected', ?, ?, ?, 384, 288, 'bench', '{}', ?, ?)",
                    [
                        image_id,
                        f"class {int(rng.integers(200))}",
                        json.dumps([x, 40, x + 150, 240]),
                        ts,
                        ts,
                    ],
                )
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, default=5000)
    args = parser.parse_args()
    work = REPO / ".bench" / "export"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store = make_store(work, args.pictures)
    try:
        results = {}
        for fmt in ("yolo", "coco"):
            started = time.perf_counter()
            gathered = gather(store)
            done = write(gathered, work / f"out-{fmt}", fmt, {"project": "bench"})  # type: ignore[arg-type]
            results[fmt] = {
                "seconds": round(time.perf_counter() - started, 2),
                "annotations": sum(len(p.annotations) for p in gathered.pictures),
                "pictures": done.pictures,
                "objects": done.objects,
            }
            print(json.dumps({fmt: results[fmt]}), flush=True)
    finally:
        store.close()
    (REPO / ".bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / ".bench" / "results" / "export.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
