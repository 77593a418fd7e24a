"""Which accepted answers a person checks too: a steady share of them, and every one
accepted by a thin margin. Only misses would be reviewed otherwise, and a wrong accept
would never be seen or counted."""

from __future__ import annotations

from typing import Literal

AuditReason = Literal["audit", "low_confidence"]


class Auditor:
    """Picks accepted answers for review.

    ``share`` of them are taken by systematic sampling (every ``1/share``-th, counted
    across the answers: an exact share, no random numbers to seed); and every answer
    whose margin is below ``margin`` (None: twice the margin threshold it was accepted
    at, a band as wide as the floor above it; 0: none) is taken as low-confidence.
    """

    def __init__(self, share: float, margin: float | None) -> None:
        self.share = share
        self.margin = margin
        self._credit = 0.0

    def pick(self, margin: float, margin_threshold: float) -> AuditReason | None:
        """Why this accepted answer should be reviewed too, or None."""
        level = 2.0 * margin_threshold if self.margin is None else self.margin
        if margin < level:
            return "low_confidence"
        self._credit += self.share
        if self._credit >= 1.0 - 1e-9:  # 10 x 0.1 sums to 0.999...
            self._credit -= 1.0
            return "audit"
        return None
