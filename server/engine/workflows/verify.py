"""``identify verify``: an honest self-test of a reference set.

A stored vector always matches itself at 1.0, so querying the index with its own
vectors proves nothing. Instead every reference is photographed again, synthetically:
warped in perspective, scaled, rotated, re-lit, blurred, noised, partly occluded,
composited onto real background photos and JPEG-compressed, then cropped as a detector
would. Those queries go through the real pipeline (embed, search, second stage).

A leave-class-out pass then asks the same queries with their own class hidden: how
the best *other* class scores is how an unknown thing that resembles the set scores.
From both passes the thresholds that maximise open-set accuracy are chosen, reported
and written into the project so identification uses them.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.catalog.store import ReferenceRow
from server.engine.catalog.vectors import reference_vector_id
from server.engine.decide.decision import Candidate
from server.engine.decide.identifier import Evidence, Identifier, Region, Search
from server.engine.errors import ImageRejected, NoReferencesError
from server.engine.project.config import Calibration, Project, write_calibration
from server.engine.project.references import IMAGE_SUFFIXES
from server.engine.vision import synth
from server.engine.vision.embedders import Embedder
from server.engine.vision.images import flatten_alpha, load_image
from server.engine.vision.localfeatures import Geometry

BACKGROUNDS_DIR = Path(__file__).parents[1] / "vision" / "assets" / "backgrounds"
"""Background photos shipped with identify (see the README there for their licences)."""
THRESHOLD_GRID = np.round(np.arange(0.20, 1.40, 0.01), 3)
MARGIN_GRID = np.round(np.arange(0.0, 0.21, 0.01), 3)
VERDICTS = (
    (0.3, "good: ship it"),
    (0.1, "fair: consider more references or training"),
    (-math.inf, "poor: the set needs training or better references"),
)
"""The seed's margin guidance (median margin > 0.3 good, 0.1-0.3 fair, < 0.1 poor)."""


def margin_verdict(median_margin: float) -> str:
    """The seed's guidance for a median margin (see ``VERDICTS``)."""
    return next(text for bound, text in VERDICTS if median_margin > bound)


@dataclass(frozen=True)
class QueryOutcome:
    """One synthetic query, asked twice: with its class indexed and with it hidden."""

    label: str
    top1: str | None
    true_score: float
    best_wrong_label: str | None
    best_wrong_score: float
    known_ranking: tuple[Candidate, ...]
    unknown_ranking: tuple[Candidate, ...]

    @property
    def margin(self) -> float:
        """The seed's margin: true class score minus best wrong class score."""
        return self.true_score - self.best_wrong_score


@dataclass
class VerifyReport:
    """Everything ``identify verify`` found."""

    project: str
    model: str
    references: int
    classes: int
    queries: int
    top1_accuracy: float
    margin_median: float
    margin_p10: float
    verdict: str
    confusable_pairs: list[dict[str, Any]]
    unknown_score_median: float
    unknown_score_p90: float
    threshold: float
    margin_threshold: float
    known_accept_rate: float
    unknown_reject_rate: float
    expected_unknown_share: float
    predicted_open_set_accuracy: float
    written: bool
    seconds: float
    backgrounds: str
    pictures: dict[str, Any] | None = None
    """The whole-picture pass (located camera frames): its queries, top-1, thresholds,
    rates and predicted open-set accuracy; None when it did not run."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` report."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _background_pool(project: Project, rng: np.random.Generator) -> tuple[list[np.ndarray], str]:
    folder = project.config.verify.backgrounds or BACKGROUNDS_DIR
    paths = (
        sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if folder.is_dir()
        else []
    )
    photos = synth.load_backgrounds(paths, rng=rng)
    if photos:
        return photos, f"{len(photos)} photos from {folder}"
    return [synth.fallback_background(rng) for _ in range(8)], "procedural (no photos found)"


def _rank_thresholds(
    known: Sequence[QueryOutcome], unknown_share: float
) -> tuple[float, float, float, float, float]:
    """Grid search for (threshold, margin) maximising predicted open-set accuracy."""
    k_top = np.array([o.known_ranking[0].score if o.known_ranking else 0 for o in known])
    k_2nd = np.array([o.known_ranking[1].score if len(o.known_ranking) > 1 else 0 for o in known])
    k_ok = np.array([o.top1 == o.label for o in known])
    u_top = np.array([o.unknown_ranking[0].score if o.unknown_ranking else 0 for o in known])
    u_2nd = np.array(
        [o.unknown_ranking[1].score if len(o.unknown_ranking) > 1 else 0 for o in known]
    )
    k_margin = k_top - np.maximum(k_2nd, 0)
    u_margin = u_top - np.maximum(u_2nd, 0)
    best = (-1.0, 0.0, 0.0, 0.0, 0.0)
    for thr in THRESHOLD_GRID:
        k_pass_thr = k_top >= thr
        u_pass_thr = u_top >= thr
        for mar in MARGIN_GRID:
            accept_ok = float(np.mean(k_ok & k_pass_thr & (k_margin >= mar)))
            reject_ok = float(np.mean(~(u_pass_thr & (u_margin >= mar))))
            acc = (1 - unknown_share) * accept_ok + unknown_share * reject_ok
            # Prefer the larger margin among ties: it is the safer operating point.
            if acc > best[0] + 1e-9 or (abs(acc - best[0]) <= 1e-9 and mar > best[2]):
                best = (acc, float(thr), float(mar), accept_ok, reject_ok)
    return best


def _confusable(outcomes: Sequence[QueryOutcome], top: int = 10) -> list[dict[str, Any]]:
    pairs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for o in outcomes:
        if o.best_wrong_label is not None:
            pairs[(o.label, o.best_wrong_label)].append(o.margin)
    rows: list[dict[str, Any]] = [
        {
            "label": a,
            "confused_with": b,
            "queries": len(m),
            "wrong_top1": int(sum(x < 0 for x in m)),
            "mean_margin": round(float(np.mean(m)), 4),
        }
        for (a, b), m in pairs.items()
    ]
    rows.sort(key=lambda r: (r["mean_margin"], -r["wrong_top1"]))
    return rows[:top]


def _picture_ranking(
    ident: Identifier,
    regions: Sequence[Region],
    exclude: str | None = None,
    search: Search | None = None,
) -> list[Candidate]:
    """The ranking a whole picture answers with: that of its best region (as
    ``Identifier.decide_regions`` chooses)."""
    rankings = [ident.candidates(r.evidence, exclude=exclude, search=search) for r in regions]
    return max(rankings, key=lambda ranked: ranked[0].score if ranked else -math.inf)


def _outcome(label: str, known: list[Candidate], unknown: list[Candidate]) -> QueryOutcome:
    true = next((c for c in known if c.label == label), None)
    wrong = next((c for c in known if c.label != label), None)
    return QueryOutcome(
        label=label,
        top1=known[0].label if known else None,
        true_score=true.score if true else 0.0,
        best_wrong_label=wrong.label if wrong else None,
        best_wrong_score=wrong.score if wrong else 0.0,
        known_ranking=tuple(known[:2]),
        unknown_ranking=tuple(unknown[:2]),
    )


class BlindHeads:
    """The unknown pass for a project with a projection head: each hidden class is asked
    through the fold head that never saw it, against the references as that fold head
    maps them: the fold head of each reference's stored plain vector (the mean of its
    plain views), where the index holds the mean of the head's views -- close, not equal,
    since the head is not linear. Brute force: the set is small."""

    def __init__(self, ident: Identifier, embedder: Any, searches: list[Search]) -> None:
        self.ident = ident
        self.embedder = embedder
        self.head = embedder.head
        self.searches = searches
        from server.engine.vision.embedders.projected import (
            Head,
            ProjectedEmbedder,
        )  # torch: with a head only

        self.spaces: list[tuple[Embedder, Search]] = [
            (ProjectedEmbedder(embedder.base, Head(module, self.head.base_model, {})), search)
            for (module, _), search in zip(self.head.folds, searches, strict=True)
        ]
        """Each fold head as an embedder, with its search: whole pictures are located
        through it (``Identifier.regions``)."""

    @classmethod
    def build(
        cls,
        project: Project,
        embedder: Embedder,
        ident: Identifier,
        refs: Sequence[ReferenceRow],
        notes: list[str],
    ) -> BlindHeads | None:
        """None without a head or without fold heads (then notes why)."""
        head = getattr(embedder, "head", None)
        if head is None:
            return None
        if not head.folds:
            notes.append(
                "the projection head has no fold heads (too few classes): the "
                "unknown pass flatters it; expect more unknowns accepted live"
            )
            return None
        base = embedder.base  # type: ignore[attr-defined]
        stored = ident.store.embeddings([r.id for r in refs], reference_vector_id(project, base))
        for ref in refs:
            if ref.id not in stored:  # added after training: embed its plain image
                try:
                    image = flatten_alpha(load_image(Path(ref.path), keep_alpha=True))
                except ImageRejected:
                    continue
                stored[ref.id] = base.embed_batch(base.preprocess(image)[None])[0]
        if not stored:
            notes.append("no reference vector to ask the fold heads against")
            return None
        keys = np.array(sorted(stored), dtype=np.int64)
        plain = np.stack([stored[int(k)] for k in keys])
        searches = [_brute_force(keys, head.project(plain, module)) for module, _ in head.folds]
        notes.append(
            f"unknown pass through {len(searches)} fold heads, each blind to the classes it hides"
        )
        return cls(ident, embedder, searches)

    def fold_for(self, label: str) -> int | None:
        """See ``Head.fold_for``."""
        return self.head.fold_for(label)

    def evidence(
        self, crops: Sequence[np.ndarray], fold: int
    ) -> tuple[list[Evidence], list[Evidence]]:
        """Each crop's evidence through the head, and through fold head ``fold``."""
        base = self.embedder.base
        plain = base.embed_batch(np.stack([base.preprocess(c) for c in crops]))
        known = self.ident.evidence(crops, self.head.project(plain))
        blind = self.head.project(plain, self.head.folds[fold][0])
        return known, [replace(ev, vector=v) for ev, v in zip(known, blind, strict=True)]


def _brute_force(keys: np.ndarray, matrix: np.ndarray) -> Search:
    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = np.atleast_2d(queries) @ matrix.T
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return keys[order], np.take_along_axis(sims, order, axis=1)

    return search


def run_verify(
    project: Project,
    embedder: Embedder,
    *,
    queries_per_reference: int | None = None,
    write: bool = True,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Run the self-test and (unless ``write`` is False) calibrate the project;
    ``progress(1)`` after each reference tested.

    Raises:
        NotIndexedError: run ``identify index`` first.
        NoReferencesError: fewer than two classes (nothing to tell apart).
    """
    started = time.perf_counter()
    vcfg = project.config.verify
    n_queries = queries_per_reference or vcfg.queries_per_reference
    rng = np.random.default_rng(vcfg.seed)
    ident = Identifier.open(project, embedder)
    try:
        refs = ident.store.active_references()
        if len({r.label for r in refs}) < 2:
            raise NoReferencesError("verify needs at least two classes to tell apart")
        backgrounds, bg_note = _background_pool(project, rng)
        outcomes: list[QueryOutcome] = []
        notes: list[str] = []
        blind = BlindHeads.build(project, embedder, ident, refs, notes)
        picture_n = vcfg.picture_queries if project.config.locate.enabled else 0
        if picture_n and getattr(embedder, "head", None) is not None and blind is None:
            picture_n = 0
            notes.append(
                "whole pictures keep the crops' thresholds: with a projection head "
                "their unknown pass needs fold heads"
            )
        picture_rng = np.random.default_rng([vcfg.seed, 1])  # crops' draws stay as they were
        pictures: list[QueryOutcome] = []
        tested = refs
        if len(refs) > vcfg.max_references:
            pick = np.sort(rng.choice(len(refs), vcfg.max_references, replace=False))
            tested = [refs[i] for i in pick]
            notes.append(
                f"self-tested a seeded sample of {len(tested)} of {len(refs)} "
                "references (verify.max_references)"
            )
        for ref in tested:
            try:
                image = load_image(Path(ref.path), keep_alpha=True)
            except ImageRejected as exc:
                notes.append(f"skipped {ref.path}: {exc.message} (run identify index)")
                continue
            crops = synth.camera_crops(image, backgrounds, rng, n_queries, strength=vcfg.strength)
            fold = blind.fold_for(ref.label) if blind else None
            if blind and fold is not None:
                known_evs, hidden_evs = blind.evidence(crops, fold)
                search: Search | None = blind.searches[fold]
            else:
                known_evs = hidden_evs = ident.evidence(crops)
                search = None
            for ev, hidden_ev in zip(known_evs, hidden_evs, strict=True):
                cache: dict[int, Geometry] = {}
                known = ident.candidates(ev, inlier_cache=cache)
                hidden = ident.candidates(
                    hidden_ev, exclude=ref.label, inlier_cache=cache, search=search
                )
                outcomes.append(_outcome(ref.label, known, hidden))
            # Whole camera frames, located as identify locates them: asked with the class
            # indexed and, located again, with it hidden.
            for _ in range(picture_n):
                bg = backgrounds[int(picture_rng.integers(len(backgrounds)))]
                frame = synth.camera_view(image, bg, picture_rng, strength=vcfg.strength).frame
                space = blind.spaces[fold] if blind and fold is not None else None
                known_regions, hidden_regions = ident.regions_with_hidden(frame, ref.label, space)
                known = _picture_ranking(ident, known_regions)
                hidden = _picture_ranking(
                    ident,
                    hidden_regions,
                    exclude=ref.label,
                    search=None if space is None else space[1],
                )
                pictures.append(_outcome(ref.label, known, hidden))
            if progress is not None:
                progress(1)
        if not outcomes:
            raise NoReferencesError("no reference could be read for the self-test")
        margins = np.array([o.margin for o in outcomes])
        top1 = float(np.mean([o.top1 == o.label for o in outcomes]))
        u_scores = np.array(
            [o.unknown_ranking[0].score if o.unknown_ranking else 0.0 for o in outcomes]
        )
        acc, thr, mar, k_rate, u_rate = _rank_thresholds(outcomes, vcfg.expected_unknown_share)
        median = float(np.median(margins))
        verdict = margin_verdict(median)
        explicit = [
            t.name
            for t in project.config.taxonomies
            if t.threshold is not None or t.margin is not None
        ]
        if explicit:
            notes.append("taxonomies with explicit thresholds keep them: " + ", ".join(explicit))
        picture_report = None
        picture_cal: dict[str, float] = {}
        if pictures:
            p_acc, p_thr, p_mar, p_known, p_unknown = _rank_thresholds(
                pictures, vcfg.expected_unknown_share
            )
            picture_report = {
                "queries": len(pictures),
                "top1_accuracy": round(float(np.mean([o.top1 == o.label for o in pictures])), 4),
                "threshold": p_thr,
                "margin_threshold": p_mar,
                "known_accept_rate": round(p_known, 4),
                "unknown_reject_rate": round(p_unknown, 4),
                "predicted_open_set_accuracy": round(p_acc, 4),
            }
            picture_cal = {
                "picture_threshold": p_thr,
                "picture_margin": p_mar,
                "picture_predicted_open_set_accuracy": round(p_acc, 4),
            }
        if write:
            write_calibration(
                project.file,
                Calibration(
                    threshold=thr,
                    margin=mar,
                    model=embedder.spec.space_id,
                    predicted_open_set_accuracy=round(acc, 4),
                    verified_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    **picture_cal,
                ),
            )
        return VerifyReport(
            project=project.name,
            model=embedder.spec.space_id,
            references=len(refs),
            classes=len({r.label for r in refs}),
            queries=len(outcomes),
            top1_accuracy=top1,
            margin_median=median,
            margin_p10=float(np.percentile(margins, 10)),
            verdict=verdict,
            confusable_pairs=_confusable(outcomes),
            unknown_score_median=float(np.median(u_scores)),
            unknown_score_p90=float(np.percentile(u_scores, 90)),
            threshold=thr,
            margin_threshold=mar,
            known_accept_rate=k_rate,
            unknown_reject_rate=u_rate,
            expected_unknown_share=vcfg.expected_unknown_share,
            predicted_open_set_accuracy=acc,
            written=write,
            seconds=time.perf_counter() - started,
            backgrounds=bg_note,
            pictures=picture_report,
            notes=notes,
        )
    finally:
        ident.close()


def format_report(r: VerifyReport) -> str:
    """The human-readable report."""
    lines = [
        (
            f"verify {r.project}: {r.references} references, {r.classes} classes, "
            f"{r.queries} synthetic camera-like queries ({r.backgrounds}), model {r.model}"
        ),
        f"  top-1 accuracy          {r.top1_accuracy:.3f}",
        f"  margin median / p10     {r.margin_median:.3f} / {r.margin_p10:.3f}   -> {r.verdict}",
        (
            f"  unknown-like score      median {r.unknown_score_median:.3f}, "
            f"p90 {r.unknown_score_p90:.3f} (best other class, own class hidden)"
        ),
        f"  recommended thresholds  score >= {r.threshold:.2f}, margin >= {r.margin_threshold:.2f}"
        + ("  (written to the project)" if r.written else "  (not written: --no-write)"),
        (
            f"  at these thresholds     known accepted correctly {r.known_accept_rate:.3f}, "
            f"unknown rejected {r.unknown_reject_rate:.3f}"
        ),
        (
            f"  predicted open-set accuracy {r.predicted_open_set_accuracy:.3f} "
            f"(assuming {r.expected_unknown_share:.0%} of live queries are unknown things)"
        ),
    ]
    if r.pictures:
        p = r.pictures
        lines.append(
            f"  whole pictures          {p['queries']} located camera frames: top-1 "
            f"{p['top1_accuracy']:.3f}; score >= {p['threshold']:.2f}, margin >= "
            f"{p['margin_threshold']:.2f}; known accepted correctly "
            f"{p['known_accept_rate']:.3f}, unknown rejected {p['unknown_reject_rate']:.3f}; "
            f"predicted open-set accuracy {p['predicted_open_set_accuracy']:.3f}"
        )
    if r.confusable_pairs:
        lines.append("  most confusable pairs (mean margin, wrong top-1 / queries):")
        for p in r.confusable_pairs[:5]:
            lines.append(
                f"    {p['label']}  vs  {p['confused_with']}   {p['mean_margin']:+.3f}, "
                f"{p['wrong_top1']}/{p['queries']}"
            )
    lines.extend(f"  note: {n}" for n in r.notes)
    return "\n".join(lines)
