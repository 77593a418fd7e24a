"""The threshold book: the thresholds in force (calibrated, configured, overridden while
serving), changes to them that apply to the next query, and what a change would do."""

from __future__ import annotations

from typing import Any

from server.engine.decide.curve import threshold_curve
from server.engine.decide.decision import Thresholds, resolve_thresholds, with_overrides
from server.engine.errors import IdentifyError, NotFoundError
from server.engine.live.context import Live
from server.engine.project.config import DEFAULT_TAXONOMY

CURVE_OBSERVATIONS = 20_000
"""Recent identifications a threshold curve counts."""
THRESHOLD_RANGE = (0.0, 2.0)
"""Scores are cosine similarity plus a second-stage bonus, so they can pass 1."""
MARGIN_RANGE = (0.0, 1.0)


class ThresholdBook:
    """Reads and changes the thresholds of one open project."""

    def __init__(self, live: Live) -> None:
        self.live = live

    def refresh(self) -> None:
        """Recompute the thresholds in force (after an override or a class change)."""
        live = self.live
        base = resolve_thresholds(live.project.config, live.embedder.spec)
        live.ident.thresholds = with_overrides(base, live.store.threshold_overrides())

    @property
    def current(self) -> Thresholds:
        """The thresholds in force."""
        return self.live.ident.thresholds

    def describe(self) -> dict[str, Any]:
        """The thresholds in force: default, per taxonomy (for crops, and ``picture`` for
        whole pictures), per class (explicit values; None inherits), and the overrides."""
        t = self.current

        def pair(values: tuple[float, float]) -> dict[str, float]:
            return {"threshold": values[0], "margin": values[1]}

        taxonomies = self.live.taxonomies() | set(t.by_taxonomy)
        return {
            "default": {
                **pair(t.default),
                "calibrated": t.calibrated,
                "picture": None if t.picture is None else pair(t.picture),
            },
            "taxonomies": {
                name: {
                    **pair(t.for_taxonomy(name)),
                    "picture": pair(t.for_taxonomy(name, picture=True)),
                }
                for name in sorted(taxonomies)
            },
            "classes": {
                label: {"threshold": thr, "margin": mar}
                for label, (thr, mar) in sorted(t.by_class.items())
            },
            "overrides": [
                {"scope": s, "name": n, "threshold": thr, "margin": mar}
                for s, n, thr, mar in self.live.store.threshold_overrides()
            ],
        }

    def set(
        self, scope: str, name: str, threshold: object = None, margin: object = None
    ) -> dict[str, Any]:
        """Set a taxonomy's or a class's threshold and/or margin; both None clears the
        override. Applies to the next query and persists.

        Raises:
            NotFoundError: no such taxonomy or class.
            IdentifyError: a value out of range.
        """
        if scope == "taxonomy":
            known = self.live.taxonomies()
        elif scope == "class":
            known = {label for label, _, _ in self.live.store.class_counts()}
        else:
            raise IdentifyError("scope must be 'taxonomy' or 'class'")
        if name not in known:
            raise NotFoundError(f"no {scope} {name!r}")
        thr = checked(threshold, "threshold", THRESHOLD_RANGE)
        mar = checked(margin, "margin", MARGIN_RANGE)
        self.live.store.set_threshold_override(scope, name, thr, mar)
        self.refresh()
        self.live.emit(
            {"type": "thresholds", "scope": scope, "name": name, "threshold": thr, "margin": mar}
        )
        return self.describe()

    def curve(
        self,
        taxonomy: str | None = None,
        label: str | None = None,
        threshold: float | None = None,
        margin: float | None = None,
        limit: int = CURVE_OBSERVATIONS,
    ) -> dict[str, Any]:
        """What moving the threshold of a taxonomy or class would do (see ``curve``),
        from the last ``limit`` identifications and every reviewed item whose best
        candidate is in it; around the threshold and margin in force unless given.

        Raises:
            IdentifyError: a threshold or margin out of range.
        """
        taxonomy_of = self.live.ident.taxonomy_of
        if label is not None:
            taxonomy = taxonomy_of.get(label, taxonomy or DEFAULT_TAXONOMY)

        def wanted(top: str | None) -> bool:
            if label is not None:
                return top == label
            tax = taxonomy_of.get(top or "", DEFAULT_TAXONOMY)
            return taxonomy is None or tax == taxonomy

        store = self.live.store
        reviewed = [
            (score, mar, status != "false_positive" and top == final)
            for _, score, mar, top, status, final in store.review_outcomes()
            if wanted(top)
        ]
        observed = [(score, mar) for top, score, mar in store.recent_scores(limit) if wanted(top)]
        t = self.current
        in_force = (
            t.for_class(label, taxonomy or DEFAULT_TAXONOMY)
            if label is not None
            else t.for_taxonomy(taxonomy or DEFAULT_TAXONOMY)
        )
        thr = checked(threshold, "threshold", THRESHOLD_RANGE)
        mar = checked(margin, "margin", MARGIN_RANGE)
        thr, mar = (in_force[0] if thr is None else thr), (in_force[1] if mar is None else mar)
        return {
            "taxonomy": taxonomy,
            "label": label,
            "threshold": thr,
            "margin": mar,
            "observed": len(observed),
            "reviewed": len(reviewed),
            "points": [p.to_json() for p in threshold_curve(observed, reviewed, thr, mar)],
        }


def checked(value: object, name: str, bounds: tuple[float, float]) -> float | None:
    """A threshold or margin from a request: None, or a number within ``bounds``.

    Raises:
        IdentifyError: not a number, or out of range.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdentifyError(f"{name} must be a number")
    if not bounds[0] <= value <= bounds[1]:  # exact for ints of any size, false for NaN
        raise IdentifyError(f"{name} must be between {bounds[0]} and {bounds[1]}")
    return float(value)
