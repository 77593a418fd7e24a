"""Annotations over time: counts by label, the rate of each type per day or week, the
seeds' levels to watch, and drift (this week against last)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from server.engine.loop.annotations import TYPES, AnnotationType

WEEKS = 12
"""Weeks the weekly series covers, newest last."""
DAYS = 30
"""Days the daily series covers, newest last."""


@dataclass(frozen=True)
class Level:
    """A rate to watch, the seeds' level for it and what crossing it means."""

    above: float
    healthy_above: bool
    """True: the rate should stay above ``above`` (confirmed); else below it."""
    meaning: str


LEVELS: dict[AnnotationType, Level] = {
    "confirmed": Level(0.80, True, "above 80 % is healthy"),
    "corrected": Level(
        0.15, False, "above 15 %: classes are confused: retrain the head or add references"
    ),
    "false_positive": Level(
        0.10,
        False,
        "above 10 %: the threshold is too low, or the detector finds noise: add hard negatives",
    ),
    "missed": Level(0.05, False, "above 5 %: the detector's recall: train it on these"),
}


@dataclass(frozen=True)
class Annotated:
    """What stats read of one annotation."""

    type: AnnotationType
    at: datetime
    label: str | None
    """The true label (the predicted one for a false positive)."""


def rates(counts: Counter[AnnotationType]) -> dict[AnnotationType, float | None]:
    """Each type's share of the annotations counted; None when there are none."""
    total = sum(counts.values())
    return {t: (counts[t] / total if total else None) for t in TYPES}


def watch(rate: float | None, kind: AnnotationType) -> str | None:
    """``ok`` or ``watch`` for a rate against its level; None without data."""
    if rate is None:
        return None
    level = LEVELS[kind]
    fine = rate > level.above if level.healthy_above else rate <= level.above
    return "ok" if fine else "watch"


def _week_start(at: datetime) -> datetime:
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def series(
    rows: Iterable[Annotated], now: datetime, period: str
) -> list[tuple[str, Counter[AnnotationType]]]:
    """Counts per type for each ``day`` (the last ``DAYS``) or ISO ``week`` (the last
    ``WEEKS``, from Monday), oldest first, empty periods included."""
    if period == "day":
        start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        keys = [(start - timedelta(days=k)).date().isoformat() for k in range(DAYS - 1, -1, -1)]

        def key_of(at: datetime) -> str:
            return at.astimezone(UTC).date().isoformat()
    else:
        start = _week_start(now)
        keys = [(start - timedelta(weeks=k)).strftime("%G-W%V") for k in range(WEEKS - 1, -1, -1)]

        def key_of(at: datetime) -> str:
            return at.astimezone(UTC).strftime("%G-W%V")

    counts: dict[str, Counter[AnnotationType]] = {k: Counter() for k in keys}
    for row in rows:
        bucket = counts.get(key_of(row.at))
        if bucket is not None:
            bucket[row.type] += 1
    return list(counts.items())


def drift(
    rows: Sequence[Annotated], now: datetime
) -> tuple[Counter[AnnotationType], Counter[AnnotationType]]:
    """Counts per type in the last 7 days and in the 7 before them."""
    this, last = Counter[AnnotationType](), Counter[AnnotationType]()
    week = timedelta(days=7)
    for row in rows:
        age = now - row.at
        if timedelta(0) <= age < week:
            this[row.type] += 1
        elif week <= age < 2 * week:
            last[row.type] += 1
    return this, last


def by_label(rows: Iterable[Annotated], depth: int | None = None) -> dict[str, Counter[str]]:
    """Counts per type for each label, or for each label's path cut to ``depth`` levels
    (``Cards > Yu-Gi-Oh``); annotations without a label count under ``(none)``."""
    out: dict[str, Counter[str]] = {}
    for row in rows:
        label = row.label or "(none)"
        if depth is not None and row.label:
            label = " > ".join(p.strip() for p in row.label.split(">")[:depth])
        out.setdefault(label, Counter())[row.type] += 1
    return out
