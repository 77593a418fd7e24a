"""Does the loop pay off? A simulated reviewer on a stream of camera-like queries.

The project indexes one reference per known class; the stream (shuffled, seeded) holds
queries of those classes and of classes nobody indexed. The first half is shown in
batches; after each batch the reviewer labels every queued item from the truth (a miss
of an indexed class is corrected to it, a thing of an unindexed class is named as a
new class, an audited answer is confirmed or corrected, a detection of nothing is a
false positive; where the item's box misses the thing, the thing's own box is given, as
a person would draw it through ``POST /api/annotations``), and in a ``separate``
taxonomy the labels are then promoted. When the first half is reviewed, the thresholds its
reviews recommend are taken (``--keep-thresholds``: not). The second half is shown with
nobody reviewing. Each
batch's open-set accuracy and unknown rate (against the classes indexed when it was
answered), the reviewed estimate beside the measured accuracy so far, and at the end
a re-application over everything stored (its throughput, and the stored answers'
accuracy before and after it)::

    python -m tests.benchmarks.bench_review --data .bench/data --name flags
    python -m tests.benchmarks.bench_review --data .bench/cards-cross --name cards-cross

Results go to ``.bench/results/review-<name>.json`` and a curve to
``tests/benchmarks/review-<name>.png``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.errors import ImageRejected
from server.engine.live.service import ObjectResult, Service
from server.engine.loop.recording import stored_size
from server.engine.project.config import DEFAULT_TAXONOMY, Project, load_project
from server.engine.vision import detectors
from server.engine.vision.embedders import project_embedder
from server.engine.vision.images import load_image
from server.engine.vision.locate import iou
from server.engine.workflows.index import build_index
from server.engine.workflows.verify import run_verify
from tests.benchmarks.bench_accuracy import benchmark_queries
from tests.conftest import REPO

BENCH = REPO / "tests" / "benchmarks"


def write_project(
    work: Path, data: Path, mode: str, unknown_share: float, audit_share: float
) -> Path:
    """The benchmark's project: the offline embedder, the detector ``identify init``
    picks for the references, one taxonomy in ``mode``, verify's defaults, and
    ``audit_share`` of the accepted answers audited."""
    work.mkdir(parents=True, exist_ok=True)
    refs = sorted((data / "references").iterdir())[:50]
    kind, _ = detectors.suggest([load_image(p, keep_alpha=True) for p in refs])
    path = work / "review.yaml"
    path.write_text(
        f"references:\n  - path: {data.resolve() / 'references'}\n"
        "naming:\n  strip_set_code: false\n  rarity_suffixes: []\n  title_case: false\n"
        "model:\n  name: efficientnet-lite0\n  device: cpu\n"
        f"detector:\n  kind: {kind}\n"
        f"review:\n  audit_share: {audit_share}\n"
        f"taxonomies:\n  - name: {DEFAULT_TAXONOMY}\n    mode: {mode}\n"
        f"verify:\n  expected_unknown_share: {unknown_share:.3f}\n"
        f"data_dir: {work.resolve() / 'data'}\n",
        encoding="utf-8",
    )
    return path


def correct(answer: str | None, truth: str, indexed: set[str]) -> bool:
    """Open-set correctness against the classes indexed when it was answered."""
    return answer == truth if truth in indexed else answer is None


@dataclass
class Truth:
    """What the reviewer knows of the queries."""

    label: dict[str, str] = field(default_factory=dict)
    """By source: the query's class."""
    indexed: dict[str, bool] = field(default_factory=dict)
    """By source: its class was indexed when it was answered."""
    stray: set[int] = field(default_factory=set)
    """Items of a detection that covers no thing: the reviewer says nothing is there."""
    boxes: dict[int, list[int]] = field(default_factory=dict)
    """Items whose box misses the thing: the thing's box in the item's picture, which
    the reviewer gives instead."""


def review(service: Service, truth: Truth) -> int:
    """Label every pending item from the truth; returns how many."""
    done = 0
    while True:
        items, _ = service.review_items("pending", limit=200)
        if not items:
            return done
        for item in items:
            source = str(item.source)
            right = truth.label[source]
            box = truth.boxes.get(item.id)
            if box is not None and item.id not in truth.stray:
                # The box missed the thing: annotated with the thing's own box.
                was = item.accepted_label
                ok = was == right if was is not None else not truth.indexed[source]
                plan = service.plan_annotation(
                    item.id, "confirmed" if ok else "corrected", right, box
                )
                try:
                    service.commit_annotation(plan, service.prepare_annotation(plan))
                    done += 1
                    continue
                except ImageRejected:
                    pass
            if item.id in truth.stray:
                action, label = "false_positive", None
            elif item.accepted_label is not None and item.accepted_label == right:
                action, label = "confirm", None
            else:
                action, label = "correct", right
            # As a person would: where the region is too poor a picture for a reference
            # (refused), the whole picture ('w'); where that is refused too, skip it.
            for region in (None, "whole"):
                plan = service.resolve_plan(item.id, action, label, region=region)
                try:
                    service.resolve_commit(plan, service.prepare_resolution(plan))
                    break
                except ImageRejected:
                    continue
            else:
                plan = service.resolve_plan(item.id, "skip")
                service.resolve_commit(plan, None)
            done += 1


def promote(service: Service) -> int:
    """A separate taxonomy's labels (reviewers' and confident answers) made references."""
    made = 0
    for step in service.promotion_plan(DEFAULT_TAXONOMY):
        try:  # as the promote job does: an answer whose picture is refused stays out
            service.commit_promotion(step, service.prepare_promotion(step))
            made += 1
        except ImageRejected:
            continue
    return made


def run_mode(
    data: Path,
    work: Path,
    mode: str,
    batches: int,
    kind: str,
    limit: int,
    seed: int,
    audit_share: float,
    apply_advice: bool,
) -> dict[str, Any]:
    """One taxonomy mode over the whole stream."""
    shutil.rmtree(work, ignore_errors=True)
    queries = benchmark_queries(data)
    random.Random(seed).shuffle(queries)
    queries = queries[:limit] if limit else queries
    unknown_share = float(np.mean([not q["known"] for q in queries]))
    project_file = write_project(work, data, mode, unknown_share, audit_share)
    project: Project = load_project(project_file)
    embedder = project_embedder(project.config)
    build_index(project, embedder)
    verify = run_verify(project, embedder)
    project = load_project(project_file)
    service = Service.open(project, embedder)
    truth = Truth()
    log: list[dict[str, Any]] = []
    """Every query's answer (the best-covering object's)."""
    half = len(queries) // 2
    size = max(1, half // batches)
    parts = [queries[i : i + size] for i in range(0, half, size)]
    parts += [queries[half + i : half + i + size] for i in range(0, len(queries) - half, size)]
    answered: list[tuple[int, str, bool]] = []
    """(observation id, truth, answered right) of every query."""
    rows = []
    reviews = 0
    try:
        shown = 0
        for number, part in enumerate(parts):
            reviewing = shown < half
            right = unknown = 0
            started = time.perf_counter()
            for q in part:
                source = f"q{q['id']}"
                indexed = set(service.live.ident.labels.values())
                prepared = service.prepare((data / q[kind]).read_bytes(), source)
                truth.label[source] = q["label"]
                truth.indexed[source] = q["label"] in indexed
                objects = service.identify_prepared(prepared, source=source)
                if not objects:  # nothing found (a detector): answered as unknown
                    ok = correct(None, q["label"], indexed)
                    right, unknown = right + ok, unknown + 1
                    answered.append((0, q["label"], ok))
                    continue
                obj = max(objects, key=lambda o: overlap(o, q, kind))
                truth.stray |= {
                    o.review_id
                    for o in objects
                    if o is not obj and o.review_id is not None and overlap(o, q, kind) < 0.3
                }
                if obj.review_id is not None and overlap(obj, q, kind) < 0.5:
                    truth.boxes[obj.review_id] = stored_box(q["bbox"], obj.picture)
                ok = correct(obj.decision.label, q["label"], indexed)
                log.append(
                    {
                        "truth": q["label"],
                        "indexed": q["label"] in indexed,
                        "answer": obj.decision.label,
                        "best": obj.decision.candidates[0].label
                        if obj.decision.candidates
                        else None,
                        "score": round(obj.decision.score, 4),
                        "half": "first" if reviewing else "second",
                    }
                )
                right += ok
                unknown += obj.decision.label is None
                answered.append((obj.observation_id or 0, q["label"], ok))
            seconds = time.perf_counter() - started
            shown += len(part)
            reviewed = review(service, truth) if reviewing else 0
            promoted = promote(service) if reviewing and mode == "separate" else 0
            reviews += reviewed
            reality = service.review_stats()["reality"]
            applied = None
            advice = reality["recommended"]
            if apply_advice and reviewing and shown >= half and advice is not None:
                # The first half reviewed: take the thresholds the reviews recommend.
                service.set_threshold(
                    "taxonomy", DEFAULT_TAXONOMY, advice["threshold"], advice["margin"]
                )
                applied = {"threshold": advice["threshold"], "margin": advice["margin"]}
            so_far = float(np.mean([ok for _, _, ok in answered]))
            rows.append(
                {
                    "batch": number,
                    "half": "first" if reviewing else "second",
                    "queries": len(part),
                    "open_set_accuracy": right / len(part),
                    "unknown_rate": unknown / len(part),
                    "reviewed_now": reviewed,
                    "reviews": reviews,
                    "promoted": promoted,
                    "classes": len(set(service.live.ident.labels.values())),
                    "measured_so_far": so_far,
                    "reviewed_estimate": reality["reviewed"],
                    "estimate_low": reality["low"],
                    "estimate_high": reality["high"],
                    "predicted": reality["predicted"],
                    "warning": reality["warning"] is not None,
                    "recommended": advice,
                    "applied": applied,
                    "seconds_per_query": seconds / len(part),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        before = stored_accuracy(service, answered)
        started = time.perf_counter()
        run, _, _ = service.reapply_start()
        while run.status == "running":
            run, _ = service.reapply_step(run)
        reapply_s = time.perf_counter() - started
        after = stored_accuracy(service, answered)
    finally:
        service.close()

    def mean(half: str, key: str) -> float:
        picked = [r for r in rows if r["half"] == half]
        return float(sum(r[key] * r["queries"] for r in picked) / sum(r["queries"] for r in picked))

    return {
        "mode": mode,
        "kind": kind,
        "detector": project.config.detector.kind,
        "audit_share": audit_share,
        "apply_recommended": apply_advice,
        "queries": len(queries),
        "unknown_share": unknown_share,
        "references": len(json.loads((data / "manifest.json").read_text())["classes"]),
        "verify_predicted": verify.predicted_open_set_accuracy,
        "batches": rows,
        "first_half": {
            "open_set_accuracy": mean("first", "open_set_accuracy"),
            "unknown_rate": mean("first", "unknown_rate"),
        },
        "second_half": {
            "open_set_accuracy": mean("second", "open_set_accuracy"),
            "unknown_rate": mean("second", "unknown_rate"),
        },
        "reapply": {
            "stored_accuracy_before": before,
            "stored_accuracy_after": after,
            "answers": run.counts.get("seen", 0),
            "seconds": reapply_s,
            "answers_per_second": run.counts.get("seen", 0) / reapply_s if reapply_s else None,
            "counts": run.counts,
        },
        "answers": log,
    }


def stored_box(box: list[int], picture: tuple[int, int]) -> list[int]:
    """A box of the picture as it came, in the review item's stored picture."""
    width, height = picture
    scaled = stored_size(width, height)
    sx, sy = scaled[0] / width, scaled[1] / height
    x0, y0, x1, y1 = box
    return [
        max(0, round(x0 * sx)),
        max(0, round(y0 * sy)),
        min(scaled[0], max(round(x0 * sx) + 1, round(x1 * sx))),
        min(scaled[1], max(round(y0 * sy) + 1, round(y1 * sy))),
    ]


def overlap(obj: ObjectResult, query: dict[str, Any], kind: str) -> float:
    """How well an object found covers the query's thing (a crop is the thing)."""
    if kind == "crop" or "bbox" not in query:
        return 1.0
    width, height = obj.picture
    return iou(obj.bbox or (0, 0, width, height), query["bbox"])


def stored_accuracy(service: Service, answered: list[tuple[int, str, bool]]) -> float:
    """Open-set accuracy of the stored answers now, against the classes indexed now."""
    indexed = set(service.live.ident.labels.values())
    db = service.live.store.db
    right = 0
    for obs_id, truth, _ in answered:
        row = db.execute("select label, matched from observations where id = ?", [obs_id])
        label, matched = row.fetchone() or (None, 0)
        right += correct(label if matched else None, truth, indexed)
    return right / len(answered)


def plot(results: list[dict[str, Any]], name: str, path: Path) -> None:
    """Open-set accuracy and unknown rate per batch, one line per mode, and the stored
    answers' accuracy after the re-application (a star)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for res in results:
        x = np.cumsum([r["queries"] for r in res["batches"]])
        acc = [r["open_set_accuracy"] for r in res["batches"]]
        unk = [r["unknown_rate"] for r in res["batches"]]
        ax.plot(x, acc, marker="o", label=f"open-set accuracy ({res['mode']})")
        ax.plot(x, unk, marker="x", linestyle="--", label=f"unknown rate ({res['mode']})")
        stored = res["reapply"]["stored_accuracy_after"]
        ax.scatter(
            [x[-1]], [stored], marker="*", s=120, label=f"all stored, re-applied ({res['mode']})"
        )
    half = results[0]["queries"] // 2
    ax.axvline(half, color="grey", linewidth=0.8)
    ax.text(half, 1.01, " reviewing stops", fontsize=8, color="grey")
    ax.set_xlabel("queries seen")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Simulated reviewer: {name}")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def replot(name: str) -> None:
    """Draw the curve again from saved results."""
    results = json.loads((REPO / ".bench" / "results" / f"review-{name}.json").read_text())
    plot(results, name, BENCH / f"review-{name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "review")
    parser.add_argument("--modes", default="unified,separate")
    parser.add_argument("--batches", type=int, default=4, help="batches in each half")
    parser.add_argument("--kind", default="frame", choices=["frame", "crop"])
    parser.add_argument("--limit", type=int, default=0, help="queries of the stream (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--audit-share",
        type=float,
        default=0.1,
        help="accepted answers audited (review.audit_share)",
    )
    parser.add_argument(
        "--keep-thresholds",
        action="store_true",
        help="do not take the thresholds the first half's reviews recommend",
    )
    args = parser.parse_args()
    out = REPO / ".bench" / "results" / f"review-{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for mode in args.modes.split(","):
        results.append(
            run_mode(
                args.data,
                args.work / f"{args.name}-{mode}",
                mode,
                args.batches,
                args.kind,
                args.limit,
                args.seed,
                args.audit_share,
                not args.keep_thresholds,
            )
        )
        out.write_text(json.dumps(results, indent=2))  # each mode as it ends
    plot(results, args.name, BENCH / f"review-{args.name}.png")
    for res in results:
        print(
            json.dumps(
                {k: res[k] for k in ("mode", "first_half", "second_half", "reapply")}, indent=1
            )
        )


if __name__ == "__main__":
    main()
