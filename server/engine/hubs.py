"""References that win matches of unlike things ("hubs").

In a high-dimensional embedding space some points lie close to many others: a
reference like that is accepted for things that look nothing like each other (a plain
flag for every flag-like picture, a cut-out for any busy frame). Views of one thing
agree with each other; a hub's matches do not. So, per reference, the agreement of its
recent accepted matches is measured as the mean pairwise cosine of their embeddings,
after removing what every picture shares (camera, lighting, background: the mean of
the classes' mean matches, each class counted once), and compared with the typical agreement, the median over
references. A reference is flagged when its agreement is below the typical one by more
than ``HUB_Z`` jackknife standard errors: a one-sided test at 1 %, so a reference with
few matches is not flagged on chance. Measured on the accuracy benchmark (both dataset
seeds): see ``tests/benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

HUB_Z = 2.33
"""One-sided 1 % level of the test against the typical agreement."""
MIN_MATCHES = 4
"""Fewest matches a reference needs to be judged (a jackknife needs four)."""
MIN_JUDGED = 5
"""Fewest references with at least three matches needed to know what is typical."""


@dataclass(frozen=True)
class Hub:
    """A reference class whose matches do not look alike."""

    label: str
    matches: int
    agreement: float
    """Mean pairwise cosine of its matches, centred on all queries' mean."""
    typical: float
    """The median agreement over references with at least three matches."""

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "matches": self.matches,
            "agreement": round(self.agreement, 3),
            "typical": round(self.typical, 3),
        }


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


def find_hubs(labels: Sequence[str | None], vectors: np.ndarray) -> list[Hub]:
    """Hubs among recent queries: ``labels[i]`` is the class accepted for query ``i``
    (None: not accepted), ``vectors[i]`` its embedding. Worst first."""
    if len(labels) != len(vectors) or len(vectors) == 0:
        return []
    x = _unit(np.asarray(vectors, np.float64))
    rows: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        if label is not None:
            rows[label].append(i)
    if not rows:
        return []
    # What all things share, each class counted once: a thing seen all day must not
    # become the centre (its own views would then look unlike each other).
    x = _unit(x - np.mean([x[ii].mean(axis=0) for ii in rows.values()], axis=0))
    judged = {label: x[ii] for label, ii in rows.items() if len(ii) >= 3}
    if len(judged) < MIN_JUDGED:
        return []
    agreement = {label: _agreement(m) for label, m in judged.items()}
    typical = float(np.median(list(agreement.values())))
    hubs = [
        Hub(label, len(m), agreement[label], typical)
        for label, m in judged.items()
        if len(m) >= MIN_MATCHES and agreement[label] + HUB_Z * _jackknife_se(m) < typical
    ]
    return sorted(hubs, key=lambda h: h.agreement - h.typical)
