"""References that win matches of unlike things ("hubs").

In a high-dimensional embedding space some points lie close to many others: a
reference like that is accepted for things that look nothing like each other (a plain
flag for every flag-like picture, a cut-out for any busy frame). Views of one thing
agree with each other; a hub's matches do not. So, per reference, the agreement of the
recent matches it won is measured as the mean pairwise cosine of their embeddings,
after removing what every picture shares (camera, lighting, background: the mean of
the references' mean matches, each reference counted once), and compared with the
typical agreement, the median over references. A reference is flagged when its agreement is below the typical one by more
than ``HUB_Z`` jackknife standard errors, so a reference with few or consistent
matches is not flagged. Measured on the accuracy benchmark (both dataset
seeds): see ``tests/benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

HUB_Z = 4.0
"""Standard errors below the typical agreement that flag a reference. Stricter than a
textbook one-sided 1 %: the jackknife error of a few matches is rough and about a
hundred references are tested at once. Set on references alike by construction (see
``tests/benchmarks/RESULTS.md``, hubs)."""
MIN_MATCHES = 4
"""Fewest matches a reference needs to be judged (a jackknife needs four)."""
MAX_MATCHES = 12
"""Matches of one reference judged: its first ones in the order given (the server gives
the newest first). Every reference is judged on as many matches as it has up to this, so
a thing seen all day is not held to a tighter error than the rest."""
MIN_JUDGED = 5
"""Fewest references with at least three matches needed to know what is typical."""
EPS = 1e-6
"""Vectors shorter than this (before or after centring) are left out."""


@dataclass(frozen=True)
class Hub:
    """A reference whose matches do not look alike."""

    reference_id: int
    matches: int
    agreement: float
    """Mean pairwise cosine of its matches, centred on what all things share."""
    typical: float
    """The median agreement over references with at least three matches."""


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _agreement(x: np.ndarray) -> float:
    """Mean pairwise cosine of unit rows (self-pairs left out)."""
    n = len(x)
    s = x.sum(axis=0)
    return float((s @ s - n) / (n * (n - 1)))


def _jackknife_se(x: np.ndarray) -> float:
    """Standard error of ``_agreement(x)`` from its leave-one-out values, each from the
    full sum in O(n d): |s - x_j|^2 = s.s - 2 s.x_j + 1 for unit rows."""
    n = len(x)
    s = x.sum(axis=0)
    loo = (s @ s - 2 * (x @ s) + 1 - (n - 1)) / ((n - 1) * (n - 2))
    return float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))


def find_hubs(winners: Sequence[int | None], vectors: np.ndarray) -> list[Hub]:
    """Hubs among recent queries: ``winners[i]`` is the reference accepted for query
    ``i`` (None: not accepted), ``vectors[i]`` its embedding. Worst first."""
    if len(winners) != len(vectors) or len(vectors) == 0:
        return []
    x = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(x, axis=1)
    rows: dict[int, list[int]] = defaultdict(list)
    for i, winner in enumerate(winners):
        if winner is not None and norms[i] > EPS:  # an empty vector says nothing
            rows[winner].append(i)
    if not rows:
        return []
    x = x / np.maximum(norms, EPS)[:, None]
    # What all things share, each reference counted once: a thing seen all day must
    # not become the centre (its own views would then look unlike each other).
    centred = x - np.mean([x[ii].mean(axis=0) for ii in rows.values()], axis=0)
    keep = np.linalg.norm(centred, axis=1) > EPS
    x = _unit(centred)
    judged = {}
    for winner, ii in rows.items():
        kept = [i for i in ii if keep[i]][:MAX_MATCHES]
        if len(kept) >= 3:
            judged[winner] = x[kept]
    if len(judged) < MIN_JUDGED:
        return []
    agreement = {winner: _agreement(m) for winner, m in judged.items()}
    values = np.array(list(agreement.values()))
    typical = float(np.median(values))
    hubs = [
        Hub(winner, len(m), agreement[winner], typical)
        for winner, m in judged.items()
        if len(m) >= MIN_MATCHES and agreement[winner] + HUB_Z * _jackknife_se(m) < typical
    ]
    return sorted(hubs, key=lambda h: h.agreement - h.typical)
