"""Accuracy benchmark: identify against the seed method, side by side, same embedder.

    python -m tests.benchmarks.bench_accuracy [--data .bench/data] [--out results.json]

Builds the development dataset if missing (see ``dataset.py``), indexes its known
references with ``identify``'s own indexer, runs ``identify verify`` to get the operating
point, then asks every query (full camera frames and the object crops a detector would
give) and reports, per method and query kind:

- known top-1: share of known-class queries whose best class is right (closed set);
- open-set AUROC: known vs unknown queries, ranked by the decision score;
- open-set accuracy: (correct accepts + correct rejects) / all queries, at the
  thresholds ``verify`` recommended (identify) or at 0.70 / 0.04 (the seed).

The seed method is the data-label-factory recipe: one plain embedding per reference,
brute-force cosine over an in-memory matrix, whole frame, accept at cosine >= 0.70 and
margin >= 0.04.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.decide.decision import aggregate
from server.engine.decide.identifier import Identifier, Region
from server.engine.project.config import load_project
from server.engine.vision.embedders import embed_images, project_embedder
from server.engine.vision.images import flatten_alpha, load_image
from server.engine.vision.locate import iou
from server.engine.workflows.index import build_index
from server.engine.workflows.train import adopt, train_projection
from server.engine.workflows.verify import run_verify
from tests.benchmarks.dataset import DatasetConfig, build_dataset, find_flags_dir

SEED_THRESHOLD, SEED_MARGIN = 0.70, 0.04
BOOTSTRAP = 1000  # resamples for the 95 % intervals
MISTAKES_SHOWN = 8  # per query kind, in the printed summary


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def point_metrics(
    known: np.ndarray, right_top1: np.ndarray, scores: np.ndarray, correct: np.ndarray
) -> dict[str, float]:
    """The five numbers of a results row, from per-query arrays."""
    return {
        "known_top1": float(right_top1[known].mean()),
        "auroc": auroc(scores[known], scores[~known]),
        "open_set_accuracy": float(correct.mean()),
        "known_accepted_correctly": float(correct[known].mean()),
        "unknown_rejected": float(correct[~known].mean()),
    }


def metrics(
    labels: list[str | None],
    top1: list[str | None],
    scores: list[float],
    accepted: list[str | None],
    resamples: int = BOOTSTRAP,
) -> dict[str, Any]:
    """Known top-1, AUROC and open-set accuracy from per-query outcomes, each with a 95 %
    bootstrap interval under ``ci`` (queries resampled with replacement, known and
    unknown ones separately so that every resample keeps the dataset's mix; seeded)."""
    known = np.array([lab is not None for lab in labels])
    s = np.array(scores, dtype=np.float64)
    right_top1 = np.array([t == lab for t, lab in zip(top1, labels, strict=True)])
    correct = np.array(
        [
            (a == lab) if lab is not None else (a is None)
            for a, lab in zip(accepted, labels, strict=True)
        ]
    )
    out: dict[str, Any] = point_metrics(known, right_top1, s, correct)
    if resamples and known.any() and (~known).any():
        rng = np.random.default_rng(0)
        k_idx, u_idx = np.flatnonzero(known), np.flatnonzero(~known)
        draws = []
        for _ in range(resamples):
            idx = np.concatenate([rng.choice(k_idx, len(k_idx)), rng.choice(u_idx, len(u_idx))])
            draws.append(point_metrics(known[idx], right_top1[idx], s[idx], correct[idx]))
        out["ci"] = {
            key: [
                float(np.percentile([d[key] for d in draws], 2.5)),
                float(np.percentile([d[key] for d in draws], 97.5)),
            ]
            for key in draws[0]
        }
    return out


def write_project(
    work: Path,
    data: Path,
    unknown_share: float,
    views: int,
    rerank: bool,
    train_seed: int = 0,
    train: Sequence[str] = (),
    rerank_settings: Sequence[str] = (),
) -> Path:
    """The benchmark's project file (offline embedder, verify's default settings)."""
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    path = work / "bench.yaml"
    path.write_text(
        f"references:\n  - path: {data.resolve() / 'references'}\n"
        f"naming:\n  strip_set_code: false\n  rarity_suffixes: []\n  title_case: false\n"
        f"model:\n  name: efficientnet-lite0\n  device: cpu\n"
        f"index:\n  views: {views}\n"
        f"rerank:\n  enabled: {str(rerank).lower()}\n"
        + "".join(f"  {kv.replace('=', ': ', 1)}\n" for kv in rerank_settings)
        + f"verify:\n  expected_unknown_share: {unknown_share:.3f}\n"
        f"train:\n  seed: {train_seed}\n"
        + "".join(f"  {kv.replace('=', ': ', 1)}\n" for kv in train)
        + f"data_dir: {work / 'index'}\n",
        encoding="utf-8",
    )
    return path


def benchmark_queries(data: Path) -> list[dict[str, Any]]:
    """The dataset's queries, each labelled as identify names its class: labels come
    from file stems, and the manifest maps its labels to those files."""
    manifest = json.loads((data / "manifest.json").read_text())
    stem_of = {label: Path(rel).stem for label, rel in manifest["references"].items()}
    return [{**q, "label": stem_of[q["label"]]} for q in manifest["queries"]]


def run(
    data: Path,
    work: Path,
    views: int,
    rerank: bool,
    head: bool = False,
    train_seed: int = 0,
    batch: int = 16,
    train: Sequence[str] = (),
    rerank_settings: Sequence[str] = (),
) -> dict[str, Any]:
    """Index, (train,) verify and evaluate one configuration."""
    queries = benchmark_queries(data)
    unknown_share = float(np.mean([not q["known"] for q in queries]))
    project_file = write_project(
        work, data, unknown_share, views, rerank, train_seed, train, rerank_settings
    )
    project = load_project(project_file)
    embedder = project_embedder(project.config)
    t0 = time.perf_counter()
    summary = build_index(project, embedder)
    index_s = time.perf_counter() - t0
    trained = None
    if head:  # what `identify train` does: fit a head, adopt it, re-index
        report = train_projection(project, embedder, force=True)
        adopt(project, embedder, report)
        trained = report.to_json()
        project = load_project(project_file)
        embedder = project_embedder(project.config)
    report = run_verify(project, embedder)
    project = load_project(project_file)  # now with verify's calibration
    ident = Identifier.open(project, embedder)
    # The seed: plain reference embeddings, brute force.
    refs = ident.store.active_references()
    ref_labels = [r.label for r in refs]
    plain = getattr(embedder, "base", embedder)  # the seed never has a head
    seed_matrix = embed_images(
        plain, [flatten_alpha(load_image(Path(r.path), keep_alpha=True)) for r in refs]
    )
    out: dict[str, Any] = {
        "views": views,
        "rerank": rerank,
        "references": len(refs),
        "queries": len(queries),
        "unknown_share": unknown_share,
        "index_seconds": index_s,
        "index_embedded": summary.embedded,
        "verify": report.to_json(),
        "train": trained,
    }
    for kind in ("crop", "frame"):
        labels: list[str | None] = [q["label"] if q["known"] else None for q in queries]
        rows: dict[str, dict[str, list[Any]]] = {
            m: {"top1": [], "score": [], "accepted": []}
            for m in ("identify", "identify_global_only", "seed")
        }
        box_iou: list[float] = []
        t0 = time.perf_counter()
        for start in range(0, len(queries), batch):
            chunk = queries[start : start + batch]
            images = [load_image(data / q[kind]) for q in chunk]
            # Crops are what a detector gives: identified as they are. Frames are whole
            # pictures: identify first locates the object in them.
            found = (
                [ident.regions(im) for im in images]
                if kind == "frame"
                else [
                    [Region(None, im, ev)]
                    for im, ev in zip(images, ident.evidence(images), strict=True)
                ]
            )
            for q, im, regions in zip(chunk, images, found, strict=True):
                ev = regions[0].evidence  # the whole picture
                for name, strip in (("identify", False), ("identify_global_only", True)):
                    asked = (
                        [
                            replace(
                                r,
                                evidence=replace(
                                    r.evidence, features=None, layouts=None, pixels=None
                                ),
                            )
                            for r in regions
                        ]
                        if strip
                        else regions
                    )
                    # A crop is decided as a crop; a frame as a whole picture (located,
                    # at the pictures' thresholds when verify calibrated them).
                    d, region = (
                        ident.decide_regions(asked)
                        if kind == "frame"
                        else (ident.decide(asked[0].evidence), asked[0])
                    )
                    rows[name]["top1"].append(d.candidates[0].label if d.candidates else None)
                    rows[name]["score"].append(d.score)
                    rows[name]["accepted"].append(d.label)
                    if kind == "frame" and name == "identify":
                        box_iou.append(iou(region.box or (0, 0, *im.shape[1::-1]), q["bbox"]))
                seed_vec = ev.vector if plain is embedder else embed_images(plain, [im])[0]
                sims = seed_matrix @ seed_vec
                order = np.argsort(-sims)
                cands = aggregate(
                    order[:10], sims[order[:10]], {i: ref_labels[i] for i in range(len(refs))}
                )
                best = cands[0]
                margin = best.score - (cands[1].score if len(cands) > 1 else 0.0)
                ok = best.score >= SEED_THRESHOLD and margin >= SEED_MARGIN
                rows["seed"]["top1"].append(best.label)
                rows["seed"]["score"].append(best.score)
                rows["seed"]["accepted"].append(best.label if ok else None)
        elapsed = time.perf_counter() - t0
        out[kind] = {
            m: metrics(labels, r["top1"], r["score"], r["accepted"]) for m, r in rows.items()
        }
        out[kind]["identify_mistakes"] = mistakes(queries, rows["identify"])
        out[kind]["seconds_per_query_all_methods"] = elapsed / len(queries)
        if box_iou:
            out[kind]["located_box_iou_median"] = float(np.median(box_iou))
            out[kind]["located_box_iou_over_half"] = float(np.mean(np.array(box_iou) > 0.5))
    ident.close()
    return out


def mistakes(queries: list[dict[str, Any]], rows: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every query identify accepted wrongly (an unknown thing taken for a known one, or a
    known thing for another), highest score first: what limits the open-set numbers."""
    out = [
        {
            "query": q["id"],
            "is": q["label"],
            "known": q["known"],
            "taken_for": accepted,
            "score": round(float(score), 3),
        }
        for q, accepted, score in zip(queries, rows["accepted"], rows["score"], strict=True)
        if accepted is not None and (not q["known"] or accepted != q["label"])
    ]
    return sorted(out, key=lambda m: -m["score"])


def cell(r: dict[str, Any], key: str) -> str:
    """A metric with its 95 % interval when there is one."""
    lo_hi = r.get("ci", {}).get(key)
    return f"{r[key]:.3f}" + (f" [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi else "")


def table(res: dict[str, Any]) -> str:
    """Markdown rows for RESULTS.md."""
    lines = [
        (
            "| queries | method | known top-1 | open-set AUROC | open-set accuracy |"
            " known accepted right | unknown rejected |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("crop", "frame"):
        for m in ("seed", "identify_global_only", "identify"):
            r = res[kind][m]
            lines.append(
                f"| {kind}s | {m} | {cell(r, 'known_top1')} | {cell(r, 'auroc')} | "
                f"{cell(r, 'open_set_accuracy')} | {r['known_accepted_correctly']:.3f} | "
                f"{r['unknown_rejected']:.3f} |"
            )
    v = res["verify"]
    lines.append("")
    lines.append(
        f"verify (views={res['views']}, rerank={res['rerank']}): threshold "
        f"{v['threshold']}, margin {v['margin_threshold']}, predicted open-set accuracy "
        f"{v['predicted_open_set_accuracy']:.3f}, top-1 {v['top1_accuracy']:.3f}, "
        f"median margin {v['margin_median']:.3f}"
    )
    if v.get("pictures"):
        p = v["pictures"]
        lines.append(
            f"verify, whole pictures: threshold {p['threshold']}, margin "
            f"{p['margin_threshold']}, predicted open-set accuracy "
            f"{p['predicted_open_set_accuracy']:.3f}, top-1 {p['top1_accuracy']:.3f}"
        )
    for kind in ("crop", "frame"):
        wrong = res[kind].get("identify_mistakes", [])
        unknown = [m for m in wrong if not m["known"]]
        lines.append(
            f"identify's {kind}s: {len(unknown)} unknown things accepted, "
            f"{len(wrong) - len(unknown)} known things taken for another; highest: "
            + ", ".join(
                f"{m['is']} as {m['taken_for']} ({m['score']:.2f})" for m in wrong[:MISTAKES_SHOWN]
            )
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(".bench/data"))
    ap.add_argument(
        "--data-seed",
        type=int,
        default=0,
        help="Seed of the dataset built into --data when it is not there yet "
        "(1: the held-out dataset of RESULTS.md).",
    )
    ap.add_argument("--work", type=Path, default=Path(".bench/accuracy"))
    ap.add_argument("--views", type=int, nargs="+", default=[6])
    ap.add_argument("--no-rerank", action="store_true")
    ap.add_argument(
        "--head",
        action="store_true",
        help="Also run `identify train` (a projection head) before verify.",
    )
    ap.add_argument("--train-seed", type=int, default=0, help="train.seed of the project.")
    ap.add_argument(
        "--train",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Another train setting of the project (repeatable), e.g. method=supcon.",
    )
    ap.add_argument(
        "--rerank",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Another rerank setting of the project (repeatable), e.g. aligned=0.",
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    manifest = args.data / "manifest.json"
    if not manifest.exists():
        build_dataset(DatasetConfig(out=args.data, flags_dir=find_flags_dir(), seed=args.data_seed))
    elif (built := json.loads(manifest.read_text()).get("seed", 0)) != args.data_seed:
        ap.error(f"{args.data} holds the dataset of seed {built}, not {args.data_seed}")
    results = []
    for views in args.views:
        name = f"views{views}" + (f"-head{args.train_seed}" if args.head else "")
        res = run(
            args.data,
            args.work / name,
            views,
            not args.no_rerank,
            args.head,
            args.train_seed,
            train=args.train,
            rerank_settings=args.rerank,
        )
        results.append(res)
        print(table(res), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
