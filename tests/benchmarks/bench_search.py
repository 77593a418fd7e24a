"""Search benchmark: USearch HNSW (f16, i8) against exact brute force at 10k-1M references.

Usage::

    python -m tests.benchmarks.bench_search [--sizes 10000 100000 1000000] [--dim 512]
        [--queries 1000] [--single 200] [--out results.json]

What it measures, per size ``n`` (see DESIGN.md, "Performance"):

- exact brute force: a float32 numpy matrix product over all ``n`` references, top-1, in
  chunks of the reference matrix so memory stays bounded;
- USearch HNSW through the project's ``VectorIndex`` wrapper, dtype f16 and i8, with the
  ``IndexConfig`` defaults (connectivity 16, expansion_add 128, expansion_search 64):
  build time, search latency per query for a batch and for one query at a time (a live
  frame is one query), recall@1 against brute force, bytes per reference in memory
  (``memory_bytes / n``) and on disk (saved file size / n), and the speed-up over brute
  force. When recall@1 falls below 0.99 with the defaults, rows with a larger
  ``expansion_search`` are added (it only affects search, so the built index is reused).

Synthetic data (deterministic, ``--seed``):

- ``n / 100`` cluster centres (one "thing" each, about 100 references per thing). Centres
  are Gaussian with a power-law spectrum (variance of the i-th principal axis ~ 1/i,
  rotated by a random orthogonal matrix), then L2-normalised. Real embedding spectra
  decay like this; isotropic centres in 512-d would be mutually orthogonal, a structure
  with no locality that no graph index navigates and that real embeddings do not have.
  The cosine between two random centres has a spread of about 0.2.
- A reference is its centre plus isotropic Gaussian noise of total norm ``--spread``
  (0.75 by default: cosine ~0.8 to its centre, ~0.64 to another reference of its thing),
  L2-normalised, float32. Neighbours inside a thing are therefore all similar and the
  index must find the right one among them, not just the right cluster.
- A query is a held-out perturbed copy of a random reference (a new photo of a known
  thing): that reference plus isotropic noise of norm ``--query-noise`` (0.6: cosine
  ~0.86 to its source), L2-normalised. It is never an indexed vector. Ground truth is the
  brute-force top-1, whatever it is (the table reports how often that is the source).

Runtime: the HNSW builds dominate. Insertion costs roughly 0.5-1 ms of wall time per
vector on 2 cores at 512-d with expansion_add 128, so 1M takes on the order of 10+
minutes per dtype (both dtypes: 20+ minutes); 10k and 100k take about a minute together.
``--dtypes f16`` or a smaller ``--expansion-add`` shortens it (the latter changes the
index being measured). Memory at 1M x 512: the f32 matrix (2 GiB) plus one index at a
time (~1.5 GiB), well under 20 GiB.

Threads: numpy (OpenBLAS) and USearch both run at their defaults, which use every core
of the machine (reported as ``threads``); set ``OPENBLAS_NUM_THREADS`` to change the
numpy side. One-at-a-time searches are single-threaded on both sides by nature.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.catalog.vector_index import HnswParams, VectorIndex
from server.engine.project.config import IndexConfig
from server.engine.vision.embedders.base import ModelSpec

log = logging.getLogger("bench_search")

CHUNK_ROWS = 65_536
"""Reference rows per brute-force chunk / generation chunk (bounds temporaries)."""
BRUTE_SINGLE_MAX = 50
"""One-at-a-time brute-force queries timed (each reads the whole matrix)."""
EF_LADDER = (128, 256, 512, 1024)
"""expansion_search values tried when the defaults miss recall@1 0.99."""
RECALL_TARGET = 0.99


@dataclass
class Row:
    """One line of the result table."""

    n: int
    method: str
    dtype: str
    expansion_search: int | None
    build_s: float | None
    batch_ms_per_query: float
    single_ms_per_query: float
    recall_at_1: float | None
    mem_bytes_per_ref: float
    file_bytes_per_ref: float | None
    speedup_batch: float | None
    speedup_single: float | None
    miss_cos_loss: float | None = None
    """Mean exact-cosine shortfall of the returned top-1 on the misses (near-ties ~0)."""


# ---------------------------------------------------------------------------- data


def _normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(
    n: int, dim: int, n_queries: int, seed: int, spread: float, query_noise: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """References (n, dim), queries (q, dim), and each query's source reference row."""
    rng = np.random.default_rng(seed)
    n_clusters = max(1, n // 100)
    scale = (1.0 / np.sqrt(np.arange(1, dim + 1))).astype(np.float32)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    rotation = rotation.astype(np.float32)
    centres = _normalise(
        (rng.standard_normal((n_clusters, dim), dtype=np.float32) * scale) @ rotation
    )
    assign = rng.integers(0, n_clusters, size=n)
    refs = np.empty((n, dim), dtype=np.float32)
    sigma = np.float32(spread / np.sqrt(dim))
    for lo in range(0, n, CHUNK_ROWS):
        hi = min(n, lo + CHUNK_ROWS)
        block = rng.standard_normal((hi - lo, dim), dtype=np.float32)
        block *= sigma
        block += centres[assign[lo:hi]]
        refs[lo:hi] = _normalise(block)
    source = rng.integers(0, n, size=n_queries)
    queries = refs[source] + rng.standard_normal((n_queries, dim), dtype=np.float32) * np.float32(
        query_noise / np.sqrt(dim)
    )
    return refs, _normalise(queries), source


# ---------------------------------------------------------------------------- brute


def brute_top1(refs: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-1 (row, cosine) of each query, chunked over the references."""
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    arg = np.zeros(len(queries), dtype=np.int64)
    for lo in range(0, len(refs), CHUNK_ROWS):
        sims = queries @ refs[lo : lo + CHUNK_ROWS].T
        j = sims.argmax(axis=1)
        s = sims[np.arange(len(queries)), j]
        better = s > best
        best[better] = s[better]
        arg[better] = j[better] + lo
    return arg, best


def time_brute(
    refs: np.ndarray, queries: np.ndarray, n_single: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Exact top-1 for the batch plus batch and one-at-a-time ms per query."""
    brute_top1(refs, queries[:8])  # warm-up
    t = time.perf_counter()
    arg, best = brute_top1(refs, queries)
    batch_ms = (time.perf_counter() - t) * 1e3 / len(queries)
    n1 = min(n_single, BRUTE_SINGLE_MAX, len(queries))
    t = time.perf_counter()
    for i in range(n1):
        int(np.argmax(refs @ queries[i]))
    single_ms = (time.perf_counter() - t) * 1e3 / n1
    return arg, best, batch_ms, single_ms


# ---------------------------------------------------------------------------- hnsw


def time_search(
    index: VectorIndex, queries: np.ndarray, n_single: int, k: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Top-1 keys/sims of the batch, batch and one-at-a-time ms per query."""
    index.search(queries[:8], k)  # warm-up
    t = time.perf_counter()
    keys, sims = index.search(queries, k)
    batch_ms = (time.perf_counter() - t) * 1e3 / len(queries)
    n1 = min(n_single, len(queries))
    t = time.perf_counter()
    for i in range(n1):
        index.search(queries[i : i + 1], k)
    single_ms = (time.perf_counter() - t) * 1e3 / n1
    return keys[:, 0], sims[:, 0], batch_ms, single_ms


def bench_size(
    n: int, args: argparse.Namespace, defaults: IndexConfig, workdir: Path
) -> tuple[list[Row], dict[str, Any]]:
    """All rows for one reference count."""
    t = time.perf_counter()
    refs, queries, source = make_data(
        n, args.dim, args.queries, args.seed + n, args.spread, args.query_noise
    )
    log.info("n=%d: data generated in %.1fs", n, time.perf_counter() - t)
    truth, truth_sim, b_batch, b_single = time_brute(refs, queries, args.single)
    info = {
        "n": n,
        "truth_is_source": float(np.mean(truth == source)),
        "mean_top1_cosine": float(truth_sim.mean()),
    }
    log.info("n=%d: brute force %.3f ms/q batch, %.3f ms/q single", n, b_batch, b_single)
    rows = [
        Row(
            n,
            "brute",
            "f32",
            None,
            None,
            b_batch,
            b_single,
            1.0,
            float(refs.itemsize * refs.shape[1]),
            None,
            1.0,
            1.0,
        )
    ]
    spec = ModelSpec(model_id="bench/synthetic", dim=args.dim)
    keys = np.arange(n, dtype=np.int64)
    for dtype in args.dtypes:
        params = HnswParams(
            connectivity=args.connectivity,
            expansion_add=args.expansion_add,
            expansion_search=defaults.expansion_search,
        )
        path = workdir / f"bench_{n}_{dtype}.usearch"
        index = VectorIndex.create(path, spec, dtype, params)
        t = time.perf_counter()
        for lo in range(0, n, 100_000):
            index.add(keys[lo : lo + 100_000], refs[lo : lo + 100_000])
            if n > 100_000:
                log.info(
                    "n=%d %s: %d added, %.0fs",
                    n,
                    dtype,
                    min(n, lo + 100_000),
                    time.perf_counter() - t,
                )
        build_s = time.perf_counter() - t
        mem = index.memory_bytes / n
        index.save()
        file_b = path.stat().st_size / n
        path.unlink()
        log.info("n=%d %s: built in %.1fs", n, dtype, build_s)
        efs = [params.expansion_search] + [
            e for e in args.ef_search if e != params.expansion_search
        ]
        ladder = [e for e in EF_LADDER if e > max(efs)]
        first = True
        while efs:
            ef = efs.pop(0)
            index._index.expansion_search = ef  # search-time only; the graph is reused
            got, _, h_batch, h_single = time_search(index, queries, args.single, args.top_k)
            recall = float(np.mean(got == truth))
            miss = np.flatnonzero(got != truth)
            loss = None
            if len(miss):
                got_sim = np.einsum("ij,ij->i", refs[np.maximum(got[miss], 0)], queries[miss])
                loss = float(np.mean(truth_sim[miss] - got_sim))
            rows.append(
                Row(
                    n,
                    "hnsw",
                    dtype,
                    ef,
                    build_s if first else None,
                    h_batch,
                    h_single,
                    recall,
                    mem,
                    file_b,
                    b_batch / h_batch,
                    b_single / h_single,
                    loss,
                )
            )
            first = False
            log.info(
                "n=%d %s ef=%d: recall@1 %.4f, %.3f ms/q batch, %.3f ms/q single",
                n,
                dtype,
                ef,
                recall,
                h_batch,
                h_single,
            )
            if not efs and recall < RECALL_TARGET and ladder:
                efs.append(ladder.pop(0))
        del index
        gc.collect()
    del refs
    gc.collect()
    return rows, info


# ---------------------------------------------------------------------------- output


def markdown_table(rows: list[Row]) -> str:
    """The rows as a GitHub markdown table."""

    def f(v: float | None, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    head = (
        "| n | method | dtype | ef_search | build s | batch ms/q | single ms/q | "
        "recall@1 | mem B/ref | file B/ref | speed-up batch | speed-up single | miss Δcos |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r.n:,} | {r.method} | {r.dtype} | {r.expansion_search or ''} | "
            f"{f(r.build_s, '.1f')} | {f(r.batch_ms_per_query, '.4f')} | "
            f"{f(r.single_ms_per_query, '.4f')} | {f(r.recall_at_1, '.4f')} | "
            f"{f(r.mem_bytes_per_ref, '.0f')} | {f(r.file_bytes_per_ref, '.0f')} | "
            f"{f(r.speedup_batch, '.1f')} | {f(r.speedup_single, '.1f')} | "
            f"{f(r.miss_cos_loss, '.3f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, optionally write JSON."""
    defaults = IndexConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=1000, help="batch of held-out queries")
    ap.add_argument(
        "--single",
        type=int,
        default=200,
        help=f"queries timed one at a time (brute force: at most {BRUTE_SINGLE_MAX})",
    )
    ap.add_argument("--dtypes", nargs="+", default=["f16", "i8"])
    ap.add_argument(
        "--ef-search",
        type=int,
        nargs="*",
        default=[],
        help="extra expansion_search values to report",
    )
    ap.add_argument("--connectivity", type=int, default=defaults.connectivity)
    ap.add_argument(
        "--expansion-add",
        type=int,
        default=defaults.expansion_add,
        help="HNSW build beam (the build time at 1M is proportional to it)",
    )
    ap.add_argument(
        "--top-k",
        type=int,
        default=defaults.top_k,
        help="neighbours fetched per HNSW query (the project's top_k)",
    )
    ap.add_argument("--spread", type=float, default=0.75)
    ap.add_argument("--query-noise", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    rows: list[Row] = []
    infos: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:
        for n in args.sizes:
            r, info = bench_size(n, args, defaults, Path(tmp))
            rows += r
            infos.append(info)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    env = {
        "threads": os.cpu_count(),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "numpy": np.__version__,
        "usearch": __import__("usearch").__version__,
        "cpu": platform.processor() or platform.machine(),
        "peak_rss_bytes": peak,
        "total_s": time.perf_counter() - started,
    }
    print(markdown_table(rows))
    print()
    for info in infos:
        print(
            f"n={info['n']:,}: exact top-1 is the query's source in "
            f"{info['truth_is_source']:.1%} of queries, mean top-1 cosine "
            f"{info['mean_top1_cosine']:.3f}"
        )
    print(
        f"threads: {env['threads']} (numpy/OpenBLAS and USearch defaults), peak RSS "
        f"{peak / 2**30:.2f} GiB, total {env['total_s']:.0f}s, top_k {args.top_k}"
    )
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "params": {
                        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                    },
                    "env": env,
                    "data": infos,
                    "rows": [asdict(r) for r in rows],
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
