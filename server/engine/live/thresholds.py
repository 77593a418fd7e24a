"""The threshold book: the thresholds in force (calibrated, configured, overridden while
serving), changes to them that apply to the next query, and what a change would do."""

from __future__ import annotations

import time

from server import contract
from server.engine.decide.curve import threshold_curve
from server.engine.decide.decision import Thresholds, resolve_thresholds, with_overrides
from server.engine.errors import IdentifyError, NotFoundError
from server.engine.live.context import Live
from server.engine.project.config import DEFAULT_TAXONOMY

CURVE_OBSERVATIONS = 20_000
"""Recent identifications a threshold curve counts."""
THRESHOLD_RANGE = (0.0, 2.0)
"""Scores are cosine similarity plus a second-stage bonus, so they can pass 1."""
MARGIN_RANGE = (0.0, 2.0)
"""A margin is a difference of such scores: with the bonuses it can pass 1 too."""


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

    def describe(self) -> contract.Thresholds:
        """The thresholds in force: default, per taxonomy (for crops, and ``picture`` for
        whole pictures), per class with explicit values (them, None inheriting, and what
        is in force), and the overrides."""
        t = self.current

        def pair(values: tuple[float, float]) -> contract.ThresholdPair:
            return {"threshold": values[0], "margin": values[1]}

        taxonomies = self.live.taxonomies() | set(t.by_taxonomy)
        taxonomy_of = {label: tax for label, tax, _ in self.live.store.class_counts()}
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
                label: self._class_setting(label, taxonomy_of.get(label, DEFAULT_TAXONOMY))
                for label in sorted(t.by_class)
            },
            "overrides": [
                {"scope": scope_of(s), "name": n, "threshold": thr, "margin": mar}
                for s, n, thr, mar in self.live.store.threshold_overrides()
            ],
        }

    def _class_setting(self, label: str, taxonomy: str) -> contract.ClassSetting:
        t = self.current
        thr, mar = t.by_class[label]
        crops, picture = t.for_class(label, taxonomy), t.for_class(label, taxonomy, picture=True)
        return {
            "threshold": thr,
            "margin": mar,
            "taxonomy": taxonomy,
            "in_force": {"threshold": crops[0], "margin": crops[1]},
            "picture": {"threshold": picture[0], "margin": picture[1]},
        }

    def set(
        self, scope: str, name: str, threshold: object = None, margin: object = None
    ) -> contract.Thresholds:
        """Set a taxonomy's or a class's threshold and/or margin; both None clears the
        override. Applies to the next query and persists.

        Raises:
            NotFoundError: no such taxonomy or class.
            IdentifyError: a value out of range.
        """
        checked_scope = scope_of(scope)
        if checked_scope == "taxonomy":
            known = self.live.taxonomies()
        else:
            known = {label for label, _, _ in self.live.store.class_counts()}
        if name not in known:
            raise NotFoundError(f"no {scope} {name!r}")
        thr = checked(threshold, "threshold", THRESHOLD_RANGE)
        mar = checked(margin, "margin", MARGIN_RANGE)
        with self.live.store.transaction():
            self.live.store.set_threshold_override(scope, name, thr, mar)
            self.live.tell(
                {
                    "type": "thresholds",
                    "scope": checked_scope,
                    "name": name,
                    "threshold": thr,
                    "margin": mar,
                    "at": time.time(),
                }
            )
        self.refresh()
        return self.describe()

    def curve(
        self,
        taxonomy: str | None = None,
        label: str | None = None,
        threshold: float | None = None,
        margin: float | None = None,
        limit: int = CURVE_OBSERVATIONS,
    ) -> contract.ThresholdCurve:
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


def scope_of(value: object) -> contract.ThresholdScope:
    """A threshold override's scope: ``taxonomy`` or ``class``.

    Raises:
        IdentifyError: anything else.
    """
    if value == "taxonomy":
        return "taxonomy"
    if value == "class":
        return "class"
    raise IdentifyError("scope must be 'taxonomy' or 'class'")


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
