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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import synth
from .config import Calibration, Project, write_calibration
from .decision import Candidate
from .embedders import Embedder
from .errors import ImageRejected, NoReferencesError
from .identifier import Identifier
from .images import IMAGE_SUFFIXES, load_image
from .localfeatures import Geometry

BACKGROUNDS_DIR = Path(__file__).parent / "assets" / "backgrounds"
"""Background photos shipped with identify (see the README there for their licences)."""
THRESHOLD_GRID = np.round(np.arange(0.20, 1.40, 0.01), 3)
MARGIN_GRID = np.round(np.arange(0.0, 0.21, 0.01), 3)
VERDICTS = ((0.3, "good: ship it"), (0.1, "fair: consider more references or training"),
            (-math.inf, "poor: the set needs training or better references"))
"""The seed's margin guidance (median margin > 0.3 good, 0.1-0.3 fair, < 0.1 poor)."""


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
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` report."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _background_pool(project: Project, rng: np.random.Generator) -> tuple[list[np.ndarray], str]:
    folder = project.config.verify.backgrounds or BACKGROUNDS_DIR
    paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) \
        if folder.is_dir() else []
    photos = synth.load_backgrounds(paths, rng=rng)
    if photos:
        return photos, f"{len(photos)} photos from {folder}"
    return [synth.fallback_background(rng) for _ in range(8)], "procedural (no photos found)"


def _rank_thresholds(known: Sequence[QueryOutcome],
                     unknown_share: float) -> tuple[float, float, float, float, float]:
    """Grid search for (threshold, margin) maximising predicted open-set accuracy."""
    k_top = np.array([o.known_ranking[0].score if o.known_ranking else 0 for o in known])
    k_2nd = np.array([o.known_ranking[1].score if len(o.known_ranking) > 1 else 0
                      for o in known])
    k_ok = np.array([o.top1 == o.label for o in known])
    u_top = np.array([o.unknown_ranking[0].score if o.unknown_ranking else 0 for o in known])
    u_2nd = np.array([o.unknown_ranking[1].score if len(o.unknown_ranking) > 1 else 0
                      for o in known])
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
    rows = [{"label": a, "confused_with": b, "queries": len(m),
             "wrong_top1": int(sum(x < 0 for x in m)),
             "mean_margin": round(float(np.mean(m)), 4)} for (a, b), m in pairs.items()]
    rows.sort(key=lambda r: (r["mean_margin"], -r["wrong_top1"]))
    return rows[:top]


def _outcome(label: str, known: list[Candidate], unknown: list[Candidate]) -> QueryOutcome:
    true = next((c for c in known if c.label == label), None)
    wrong = next((c for c in known if c.label != label), None)
    return QueryOutcome(
        label=label, top1=known[0].label if known else None,
        true_score=true.score if true else 0.0,
        best_wrong_label=wrong.label if wrong else None,
        best_wrong_score=wrong.score if wrong else 0.0,
        known_ranking=tuple(known[:2]), unknown_ranking=tuple(unknown[:2]),
    )


def run_verify(project: Project, embedder: Embedder, *, queries_per_reference: int | None = None,
               write: bool = True) -> VerifyReport:
    """Run the self-test and (unless ``write`` is False) calibrate the project.

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
        if len(set(r.label for r in refs)) < 2:
            raise NoReferencesError("verify needs at least two classes to tell apart")
        backgrounds, bg_note = _background_pool(project, rng)
        outcomes: list[QueryOutcome] = []
        notes: list[str] = []
        tested = refs
        if len(refs) > vcfg.max_references:
            pick = np.sort(rng.choice(len(refs), vcfg.max_references, replace=False))
            tested = [refs[i] for i in pick]
            notes.append(f"self-tested a seeded sample of {len(tested)} of {len(refs)} "
                         "references (verify.max_references)")
        for ref in tested:
            try:
                image = load_image(Path(ref.path), keep_alpha=True)
            except ImageRejected as exc:
                notes.append(f"skipped {ref.path}: {exc.message} (run identify index)")
                continue
            crops = []
            for _ in range(n_queries):
                bg = backgrounds[int(rng.integers(len(backgrounds)))]
                view = synth.camera_view(image, bg, rng, strength=vcfg.strength)
                crops.append(synth.crop_object(view, rng))
            for ev in ident.evidence(crops):
                cache: dict[int, Geometry] = {}
                known = ident.candidates(ev, inlier_cache=cache)
                hidden = ident.candidates(ev, exclude=ref.label, inlier_cache=cache)
                outcomes.append(_outcome(ref.label, known, hidden))
        if not outcomes:
            raise NoReferencesError("no reference could be read for the self-test")
        margins = np.array([o.margin for o in outcomes])
        top1 = float(np.mean([o.top1 == o.label for o in outcomes]))
        u_scores = np.array([o.unknown_ranking[0].score if o.unknown_ranking else 0.0
                             for o in outcomes])
        acc, thr, mar, k_rate, u_rate = _rank_thresholds(outcomes, vcfg.expected_unknown_share)
        median = float(np.median(margins))
        verdict = next(text for bound, text in VERDICTS if median > bound)
        explicit = [t.name for t in project.config.taxonomies
                    if t.threshold is not None or t.margin is not None]
        if explicit:
            notes.append("taxonomies with explicit thresholds keep them: " + ", ".join(explicit))
        if write:
            write_calibration(project.file, Calibration(
                threshold=thr, margin=mar, model=embedder.spec.model_id,
                predicted_open_set_accuracy=round(acc, 4),
                verified_at=datetime.now(UTC).isoformat(timespec="seconds"),
            ))
        return VerifyReport(
            project=project.name, model=embedder.spec.model_id, references=len(refs),
            classes=len(set(r.label for r in refs)), queries=len(outcomes),
            top1_accuracy=top1, margin_median=median,
            margin_p10=float(np.percentile(margins, 10)), verdict=verdict,
            confusable_pairs=_confusable(outcomes),
            unknown_score_median=float(np.median(u_scores)),
            unknown_score_p90=float(np.percentile(u_scores, 90)),
            threshold=thr, margin_threshold=mar, known_accept_rate=k_rate,
            unknown_reject_rate=u_rate, expected_unknown_share=vcfg.expected_unknown_share,
            predicted_open_set_accuracy=acc, written=write,
            seconds=time.perf_counter() - started, backgrounds=bg_note, notes=notes,
        )
    finally:
        ident.close()


def format_report(r: VerifyReport) -> str:
    """The human-readable report."""
    lines = [
        f"verify {r.project}: {r.references} references, {r.classes} classes, "
        f"{r.queries} synthetic camera-like queries ({r.backgrounds}), model {r.model}",
        f"  top-1 accuracy          {r.top1_accuracy:.3f}",
        f"  margin median / p10     {r.margin_median:.3f} / {r.margin_p10:.3f}   -> {r.verdict}",
        f"  unknown-like score      median {r.unknown_score_median:.3f}, "
        f"p90 {r.unknown_score_p90:.3f} (best other class, own class hidden)",
        f"  recommended thresholds  score >= {r.threshold:.2f}, margin >= {r.margin_threshold:.2f}"
        + ("  (written to the project)" if r.written else "  (not written: --no-write)"),
        f"  at these thresholds     known accepted correctly {r.known_accept_rate:.3f}, "
        f"unknown rejected {r.unknown_reject_rate:.3f}",
        f"  predicted open-set accuracy {r.predicted_open_set_accuracy:.3f} "
        f"(assuming {r.expected_unknown_share:.0%} of live queries are unknown things)",
    ]
    if r.confusable_pairs:
        lines.append("  most confusable pairs (mean margin, wrong top-1 / queries):")
        for p in r.confusable_pairs[:5]:
            lines.append(f"    {p['label']}  vs  {p['confused_with']}   {p['mean_margin']:+.3f}, "
                         f"{p['wrong_top1']}/{p['queries']}")
    lines.extend(f"  note: {n}" for n in r.notes)
    return "\n".join(lines)
