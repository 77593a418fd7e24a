"""Throughput of the loop's bulk work: ``identify label`` against ``identify match`` on
the same folder, and ``identify reapply`` over stored answers (nothing changed; after
references were added, where the second stage runs again from kept pictures; and over
many stored answers)::

    python -m tests.benchmarks.bench_loop --data .bench/data [--answers 50000]

Both commands run as the CLI runs them (model loaded, index opened, every result
recorded), on fresh copies of the same indexed project, twice each in turn; the faster
of each pair counts. Results go to ``.bench/results/loop.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from server.engine.catalog.store import Store
from server.engine.project.config import load_project
from server.engine.vision.embedders import project_embedder
from server.engine.workflows.index import build_index
from server.engine.workflows.label import label
from server.engine.workflows.match import match_project
from server.engine.workflows.reapply import reapply
from tests.benchmarks.bench_accuracy import benchmark_queries
from tests.conftest import REPO
from tests.integration.crash import seed_answers


def project_file(work: Path, refs: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    path = work / "loop.yaml"
    path.write_text(
        f"references:\n  - path: {refs}\n"
        "naming:\n  strip_set_code: false\n  rarity_suffixes: []\n  title_case: false\n"
        "model:\n  name: efficientnet-lite0\n  device: cpu\n"
        f"data_dir: {work / 'data'}\n",
        encoding="utf-8",
    )
    return path


def fresh(built: Path, work: Path, refs: Path) -> Path:
    """A copy of the indexed project with no answers yet."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(built / "data", work / "data")
    return project_file(work, refs)


def timed_match(file: Path, photos: list[Path]) -> float:
    started = time.perf_counter()
    with match_project(str(file), record=True) as run:
        for _ in run.results(photos):
            pass
    return time.perf_counter() - started


def timed_label(file: Path, folder: Path) -> float:
    started = time.perf_counter()
    label(str(file), [str(folder)])
    return time.perf_counter() - started


def timed_reapply(file: Path) -> dict[str, Any]:
    started = time.perf_counter()
    done = reapply(str(file))
    seconds = time.perf_counter() - started
    seen = done.run.counts["seen"]
    return {
        "seconds": seconds,
        "answers": seen,
        "answers_per_second": seen / seconds,
        "second_stage": done.run.counts["second_stage"],
        "second_stage_rerun": done.run.counts["second_stage_rerun"],
        "changed": seen - done.run.counts["unchanged"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "loop")
    parser.add_argument("--kind", default="frame", choices=["frame", "crop"])
    parser.add_argument("--answers", type=int, default=50_000)
    args = parser.parse_args()
    data, work = args.data.resolve(), args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    refs = work / "refs"
    shutil.copytree(data / "references", refs)
    folder = work / "photos"
    folder.mkdir()
    for q in benchmark_queries(data):
        shutil.copy(data / q[args.kind], folder / Path(q[args.kind]).name)
    photos = sorted(folder.iterdir())
    built = work / "built"
    base = project_file(built, refs)
    project = load_project(base)
    build_index(project, project_embedder(project.config))

    match_s, label_s = [], []
    for _ in range(2):
        match_s.append(timed_match(fresh(built, work / "m", refs), photos))
        label_s.append(timed_label(fresh(built, work / "l", refs), folder))
    labelled = work / "l" / "loop.yaml"
    out: dict[str, Any] = {
        "pictures": len(photos),
        "match_seconds": min(match_s),
        "label_seconds": min(label_s),
        "match_pictures_per_second": len(photos) / min(match_s),
        "label_pictures_per_second": len(photos) / min(label_s),
        "label_to_match": min(match_s) / min(label_s),
        "label_again_seconds": timed_label(labelled, folder),
        "reapply_unchanged": timed_reapply(labelled),
    }
    # New references (the unknown classes'): the second stage runs again for the
    # answers whose shortlist now holds one, from the pictures kept of queued ones.
    for ref in (data / "unknown_references").iterdir():
        shutil.copy(ref, refs / ref.name)
    project = load_project(labelled)
    build_index(project, project_embedder(project.config))
    out["reapply_new_references"] = timed_reapply(labelled)
    spec = project_embedder(project.config).spec
    seed_answers(project.db_path, spec.space_id, spec.dim, args.answers)
    out["reapply_many"] = timed_reapply(labelled)
    store = Store(project.db_path)
    try:
        out["stored_answers"] = store.observation_counts()[0]
    finally:
        store.close()
    path = REPO / ".bench" / "results" / "loop.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
