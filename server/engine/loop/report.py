"""What the annotations add up to, in the API's shapes: the statistics of
``GET /api/stats`` (see ``loop.stats``) and each annotation as the API shows it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from server import contract
from server.engine.catalog.store import AnnotationRow, Store
from server.engine.loop.annotations import TYPES, AnnotationType, label_matches, type_of
from server.engine.loop.estimate import Judged, Stratum, disagreement, estimate, recommend
from server.engine.loop.stats import LEVELS, Annotated, by_label, drift, rates, series, watch

STRATA = {
    "below_threshold": "unknown answers",
    "low_margin": "unknown answers",
    "empty_index": "unknown answers",
    "low_confidence": "thin-margin accepts",
    "audit": "other accepts (audits)",
}
"""The stratum of the answers queued for each reason (see ``loop.estimate``)."""


def reality(
    store: Store, predicted: float | None, current: tuple[float, float] | None = None
) -> contract.Reality:
    """The reviewed estimate of open-set accuracy beside ``verify``'s prediction, and
    the thresholds the reviewed answers recommend (``current``: the score and margin
    thresholds in force; None: those of the newest answer)."""
    outcomes = store.reviewed_outcomes()
    observed, accepted = store.answer_counts()

    def of(*reasons: str) -> tuple[int, int, int]:
        rows = [outcomes.get(r, (0, 0, 0)) for r in reasons]
        return sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows)

    _, miss_judged, miss_right = of("below_threshold", "low_margin", "empty_index")
    thin, thin_judged, thin_right = of("low_confidence")
    _, audit_judged, audit_right = of("audit")
    strata = [
        Stratum("unknown answers", observed - accepted, miss_judged, miss_right),
        Stratum("thin-margin accepts", thin, thin_judged, thin_right),
        Stratum("other accepts (audits)", max(0, accepted - thin), audit_judged, audit_right),
    ]
    found = estimate(strata)
    return {
        "reviewed": found.accuracy,
        "low": found.low,
        "high": found.high,
        "reviews": found.reviews,
        "waiting_for": list(found.missing),
        "predicted": predicted,
        "warning": disagreement(found, predicted),
        "recommended": _advice(store, strata, current or store.latest_thresholds()),
    }


def _advice(
    store: Store, strata: list[Stratum], current: tuple[float, float] | None
) -> contract.ThresholdAdvice | None:
    """The thresholds the judged answers come out best at (see ``loop.estimate``)."""
    if current is None:
        return None
    judged = [
        Judged(STRATA.get(reason, "unknown answers"), score, margin, top, truth, indexed)
        for reason, score, margin, top, truth, indexed in store.judged_answers()
    ]
    found = recommend(judged, {s.name: s.answers for s in strata}, current)
    if found is None:
        return None
    return {
        "threshold": round(found.threshold, 4),
        "margin": round(found.margin, 4),
        "reviewed": found.estimate.accuracy,
        "low": found.estimate.low,
        "high": found.estimate.high,
        "reviews": found.estimate.reviews,
        "current_threshold": round(current[0], 4),
        "current_margin": round(current[1], 4),
        "current_reviewed": found.current.accuracy,
        "gain": round(found.gain, 4),
        "gain_low": round(found.gain_low, 4),
    }


def stats(
    store: Store,
    label: str | None,
    depth: int | None,
    now: datetime,
    predicted: float | None = None,
    current: tuple[float, float] | None = None,
) -> contract.Stats:
    """Counts by type and label, rates per day and week, the levels to watch and
    drift (see ``loop.stats``); ``label`` keeps a class or a level of its path."""
    rows = [
        Annotated(type_of(kind), datetime.fromisoformat(at), name)
        for kind, at, name in store.annotation_log()
        if label is None or label_matches(name, label)
    ]
    counts = Counter(r.type for r in rows)
    this, last = drift(rows, now)
    this_rates, last_rates = rates(this), rates(last)
    observed, accepted = store.observation_counts()
    labelled = sorted(by_label(rows, depth).items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return {
        "queue": store.review_counts(),
        "annotations": len(rows),
        "counts": type_counts(counts),
        "rates": type_rates(rates(counts)),
        "per_day": [period(k, c) for k, c in series(rows, now, "day")],
        "per_week": [period(k, c) for k, c in series(rows, now, "week")],
        "watch": [
            {
                "type": t,
                "level": level.above,
                "healthy_above": level.healthy_above,
                "rate": this_rates[t],
                "status": watch(this_rates[t], t),
                "meaning": level.meaning,
            }
            for t, level in LEVELS.items()
        ],
        "drift": {
            "this_week": period("last 7 days", this),
            "last_week": period("7 days before", last),
            "change": type_rates({t: _change(this_rates[t], last_rates[t]) for t in TYPES}),
        },
        "labels": [
            {"label": name, "total": sum(c.values()), "counts": type_counts(c)}
            for name, c in labelled[:100]
        ],
        "reality": reality(store, predicted, current),
        "observations": observed,
        "auto_labelled": accepted,
        "coverage": (accepted / observed) if observed else None,
    }


def type_counts(counts: Mapping[Any, int]) -> contract.TypeCounts:
    return {
        "confirmed": counts.get("confirmed", 0),
        "corrected": counts.get("corrected", 0),
        "false_positive": counts.get("false_positive", 0),
        "missed": counts.get("missed", 0),
    }


def type_rates(rates: Mapping[AnnotationType, float | None]) -> contract.TypeRates:
    return {
        "confirmed": rates["confirmed"],
        "corrected": rates["corrected"],
        "false_positive": rates["false_positive"],
        "missed": rates["missed"],
    }


def period(name: str, counts: Mapping[Any, int]) -> contract.PeriodCounts:
    shares = rates(Counter({t: counts.get(t, 0) for t in TYPES}))
    return {
        "period": name,
        "total": sum(counts.values()),
        "counts": type_counts(counts),
        "rates": type_rates(shares),
    }


def provenance(recorded: Mapping[str, Any]) -> contract.Provenance:
    """The provenance an annotation carries, from its observation's."""
    return {
        "embedder": recorded.get("embedder"),
        "detector": recorded.get("detector"),
        "threshold": recorded.get("threshold"),
        "margin": recorded.get("margin"),
    }


def annotation_json(row: AnnotationRow) -> contract.Annotation:
    """The API shape."""
    size = (
        None
        if row.image_width is None or row.image_height is None
        else [row.image_width, row.image_height]
    )
    return {
        "id": row.id,
        "type": type_of(row.type),
        "item_id": row.review_id,
        "predicted_label": row.predicted_label,
        "candidate_label": row.candidate_label,
        "true_label": row.true_label,
        "taxonomy": row.taxonomy,
        "box": row.box,
        "image_size": size,
        "score": row.score,
        "margin": row.margin,
        "reference_id": row.reference_id,
        "author": row.author,
        "provenance": provenance(row.provenance),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _change(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else now - before
