"""What moving a threshold would do, from data already seen: coverage (the share of
recorded identifications it would accept) and precision (the share of reviewed items
it would accept whose best candidate the reviewer confirmed), at thresholds around the
one in force."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from server import contract

CURVE_SPAN = 5
"""Points either side of the threshold in force."""
CURVE_STEP = 0.02
"""Threshold step between points."""


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    coverage: float | None
    """None when nothing was recorded."""
    precision: float | None
    """None when no reviewed item would be accepted."""
    judged: int
    """Reviewed items this threshold would accept (its precision is theirs)."""

    def to_json(self) -> contract.CurvePoint:
        return {
            "threshold": self.threshold,
            "coverage": self.coverage,
            "precision": self.precision,
            "judged": self.judged,
        }


def threshold_curve(
    observed: Sequence[tuple[float, float]],
    reviewed: Sequence[tuple[float, float, bool]],
    threshold: float,
    margin: float,
) -> list[CurvePoint]:
    """Coverage and precision at ``threshold`` and ``CURVE_SPAN`` steps either side,
    with ``margin`` held: ``observed`` are (score, margin) of identifications,
    ``reviewed`` (score, margin, whether the best candidate was right)."""
    obs = np.asarray(observed, np.float64).reshape(-1, 2)
    rev = np.asarray(reviewed, np.float64).reshape(-1, 3)
    obs_margin_ok = obs[:, 1] >= margin
    rev_margin_ok = rev[:, 1] >= margin
    out = []
    for k in range(-CURVE_SPAN, CURVE_SPAN + 1):
        t = round(threshold + k * CURVE_STEP, 4)
        covered = int(np.sum(obs_margin_ok & (obs[:, 0] >= t)))
        above = rev_margin_ok & (rev[:, 0] >= t)
        judged = int(np.sum(above))
        out.append(
            CurvePoint(
                t,
                covered / len(obs) if len(obs) else None,
                float(np.sum(rev[above, 2])) / judged if judged else None,
                judged,
            )
        )
    return out
