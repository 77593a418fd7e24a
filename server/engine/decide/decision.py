"""The decision: top-k neighbours -> per-class score -> accept or "unknown".

A class is accepted when its score reaches the class's (or its taxonomy's) threshold
AND its margin over the best *other* class reaches the margin threshold. Several
references of one class are aggregated (best reference wins) before deciding, so a
class with many references does not crowd out the margin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from server import contract
from server.engine.project.config import DEFAULT_TAXONOMY, ProjectConfig
from server.engine.vision.embedders.base import ModelSpec


@dataclass(frozen=True)
class Candidate:
    """One class in the ranking for a query."""

    label: str
    score: float
    """Decision score: cosine similarity plus the geometric bonus of the second stage."""
    reference_id: int
    """The best-matching reference of this class (a database row id)."""
    cosine: float
    """Global-embedding cosine similarity of that reference."""
    inliers: int | None = None
    """Homography inliers from the second stage; None when it did not run."""
    homography: np.ndarray | None = field(default=None, compare=False, repr=False)
    """The second stage's homography (query keypoints -> reference keypoints) behind
    ``inliers``, when it found one; not part of the public shape."""
    appearance: float | None = None
    """Colour-layout similarity to that reference (0-1); None when not compared."""
    aligned: float | None = None
    """Correlation of the query seen flat with that reference, pixel by pixel, after
    aligning them (-1 to 1, see ``vision.aligned``); None when not compared."""

    def to_json(self) -> contract.Candidate:
        """The public shape: label and score (plus evidence)."""
        out: contract.Candidate = {
            "label": self.label,
            "score": round(self.score, 4),
            "cosine": round(self.cosine, 4),
            "reference_id": self.reference_id,
        }
        if self.inliers is not None:
            out["inliers"] = self.inliers
        if self.appearance is not None:
            out["appearance"] = round(self.appearance, 4)
        if self.aligned is not None:
            out["aligned"] = round(self.aligned, 4)
        return out


@dataclass(frozen=True)
class Decision:
    """The answer for one image or crop."""

    label: str | None
    """The accepted class, or None for unknown."""
    score: float
    margin: float
    matched: bool
    reason: contract.Reason
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)
    reference_id: int | None = None
    threshold: float = 0.0
    margin_threshold: float = 0.0
    rarity: str | None = None
    """The accepted reference's rarity code (``_ur`` in its file name), if any."""

    def to_json(
        self, bbox: Sequence[int] | None = None, quad: np.ndarray | None = None
    ) -> contract.Decided:
        """The object shape of ``identify match --json`` and the HTTP API; ``quad``: the
        object's four corners in the picture, when a detector found them."""
        return {
            "bbox": list(bbox) if bbox is not None else None,
            "quad": None
            if quad is None
            else [[round(float(x), 1), round(float(y), 1)] for x, y in quad],
            "label": self.label,
            "rarity": self.rarity,
            "score": round(self.score, 4),
            "margin": round(self.margin, 4),
            "matched": self.matched,
            "reason": self.reason,
            "reference_id": self.reference_id,
            "candidates": [c.to_json() for c in self.candidates],
        }


Pair = tuple[float | None, float | None]
"""(score threshold, margin threshold), each None where the level sets nothing."""


@dataclass(frozen=True)
class Thresholds:
    """Thresholds in force: explicit per-class and per-taxonomy values over the project
    default, which differs for whole pictures when ``verify`` calibrated those apart."""

    default: tuple[float, float]
    """For crops (and for pictures without a calibration of their own)."""
    by_taxonomy: Mapping[str, Pair] = field(default_factory=dict)
    by_class: Mapping[str, Pair] = field(default_factory=dict)
    calibrated: bool = False
    picture: tuple[float, float] | None = None
    """The default for whole pictures, which are located first and so answer with the
    best of several regions (``identify verify`` calibrates them on synthetic frames)."""

    def base(self, picture: bool = False) -> tuple[float, float]:
        """The default for crops, or (``picture``) for whole pictures."""
        return self.picture if picture and self.picture is not None else self.default

    def for_taxonomy(self, taxonomy: str, picture: bool = False) -> tuple[float, float]:
        """(score threshold, margin threshold) of a taxonomy."""
        base = self.base(picture)
        thr, mar = self.by_taxonomy.get(taxonomy, (None, None))
        return (base[0] if thr is None else thr, base[1] if mar is None else mar)

    def for_class(self, label: str, taxonomy: str, picture: bool = False) -> tuple[float, float]:
        """(score threshold, margin threshold) that apply to ``label``, in a crop or (with
        ``picture``) in a whole picture."""
        thr, mar = self.for_taxonomy(taxonomy, picture)
        cls_thr, cls_mar = self.by_class.get(label, (None, None))
        return (thr if cls_thr is None else cls_thr, mar if cls_mar is None else cls_mar)


def resolve_thresholds(cfg: ProjectConfig, spec: ModelSpec) -> Thresholds:
    """Explicit taxonomy/class values > verify's calibration (for this model) > the
    model's own uncalibrated default."""
    cal = cfg.calibration
    calibrated = cal is not None and cal.model == spec.space_id
    default = (
        (cal.threshold, cal.margin)
        if calibrated and cal
        else (spec.default_threshold, spec.default_margin)
    )
    picture = None  # a project that does not locate identifies whole pictures as crops
    if calibrated and cal and cal.picture_threshold is not None and cfg.locate.enabled:
        picture = (
            cal.picture_threshold,
            cal.margin if cal.picture_margin is None else cal.picture_margin,
        )
    by_tax: dict[str, Pair] = {}
    by_class: dict[str, Pair] = {}
    for tax in cfg.taxonomies:
        by_tax[tax.name] = (tax.threshold, tax.margin)
        for label, ct in tax.classes.items():
            by_class[label] = (ct.threshold, ct.margin)
    return Thresholds(
        default=default,
        by_taxonomy=by_tax,
        by_class=by_class,
        calibrated=calibrated,
        picture=picture,
    )


def with_overrides(
    base: Thresholds, overrides: Sequence[tuple[str, str, float | None, float | None]]
) -> Thresholds:
    """``base`` with thresholds set through the server applied on top (each value that is
    None keeps the base one)."""
    by_tax = dict(base.by_taxonomy)
    by_class = dict(base.by_class)
    for scope, name, thr, mar in overrides:
        table = by_tax if scope == "taxonomy" else by_class
        old = table.get(name, (None, None))
        table[name] = (old[0] if thr is None else thr, old[1] if mar is None else mar)
    return replace(base, by_taxonomy=by_tax, by_class=by_class)


def aggregate(keys: np.ndarray, sims: np.ndarray, labels: Mapping[int, str]) -> list[Candidate]:
    """Per-class ranking from one query's neighbours: each class scores its best reference."""
    best: dict[str, Candidate] = {}
    for key, sim in zip(keys.tolist(), sims.tolist(), strict=True):
        if key < 0 or not np.isfinite(sim):
            continue
        label = labels.get(int(key))
        if label is None:  # removed meanwhile
            continue
        if label not in best or sim > best[label].score:
            best[label] = Candidate(
                label=label, score=float(sim), reference_id=int(key), cosine=float(sim)
            )
    return sorted(best.values(), key=lambda c: -c.score)


def decide(
    candidates: Sequence[Candidate],
    thresholds: Thresholds,
    taxonomy_of: Mapping[str, str],
    top_n: int = 5,
    picture: bool = False,
) -> Decision:
    """Accept the best class or answer unknown (see the module docstring); ``picture``
    says the candidates come from a whole picture (see ``Thresholds.picture``)."""
    ranked = sorted(candidates, key=lambda c: -c.score)
    if not ranked:
        thr, mar = thresholds.base(picture)
        return Decision(None, 0.0, 0.0, False, "empty_index", threshold=thr, margin_threshold=mar)
    top = ranked[0]
    second = ranked[1].score if len(ranked) > 1 else 0.0
    margin = top.score - max(second, 0.0)
    thr, mar = thresholds.for_class(
        top.label, taxonomy_of.get(top.label, DEFAULT_TAXONOMY), picture
    )
    reason: contract.Reason
    if top.score < thr:
        reason = "below_threshold"
    elif margin < mar:
        reason = "low_margin"
    else:
        reason = "matched"
    matched = reason == "matched"
    return Decision(
        label=top.label if matched else None,
        score=top.score,
        margin=margin,
        matched=matched,
        reason=reason,
        candidates=tuple(ranked[:top_n]),
        reference_id=top.reference_id if matched else None,
        threshold=thr,
        margin_threshold=mar,
    )


def with_scores(
    c: Candidate,
    score: float,
    inliers: int | None,
    homography: np.ndarray | None = None,
    appearance: float | None = None,
    aligned: float | None = None,
) -> Candidate:
    """A copy of a candidate with a new score and second-stage evidence."""
    return replace(
        c,
        score=score,
        inliers=inliers,
        homography=homography,
        appearance=appearance,
        aligned=aligned,
    )
