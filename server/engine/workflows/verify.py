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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.catalog.store import ReferenceRow
from server.engine.decide.decision import Candidate
from server.engine.decide.identifier import Identifier, Region, Search
from server.engine.errors import ImageRejected, NoReferencesError
from server.engine.project.config import Calibration, Project, write_calibration
from server.engine.project.references import IMAGE_SUFFIXES
from server.engine.vision import backdrops, synth
from server.engine.vision.backdrops import BACKGROUNDS_DIR
from server.engine.vision.embedders import Embedder, project_embedder
from server.engine.vision.images import load_image
from server.engine.vision.localfeatures import Geometry
from server.engine.workflows.blind_heads import BlindHeads
from server.engine.workflows.common import (
    Stage,
    open_project,
    quiet,
    reference_count,
    writer_lock,
)
from server.engine.workflows.preflight import preflight
from server.engine.workflows.verify_report import VerifyReport, margin_verdict

THRESHOLD_GRID = np.round(np.arange(0.20, 1.40, 0.01), 3)
MARGIN_GRID = np.round(np.arange(0.0, 0.21, 0.01), 3)


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


def background_photos(project: Project, rng: np.random.Generator) -> tuple[list[np.ndarray], Path]:
    """The photos of ``verify.backgrounds`` (or the packaged folder) to put things in
    front of, possibly none, and the folder."""
    folder = project.config.verify.backgrounds or BACKGROUNDS_DIR
    paths = (
        sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if folder.is_dir()
        else []
    )
    return backdrops.load_backgrounds(paths, rng=rng), folder


def background_pool(project: Project, rng: np.random.Generator) -> tuple[list[np.ndarray], str]:
    """Photos to put things in front of (``background_photos``), else procedural ones;
    and a line saying which."""
    photos, folder = background_photos(project, rng)
    if photos:
        return photos, f"{len(photos)} photos from {folder}"
    return [backdrops.fallback_background(rng) for _ in range(8)], "procedural (no photos found)"


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


@dataclass
class _SelfTest:
    """The state of one self-test: the identifier, the blind heads, the backgrounds and
    the seeded draws, and the outcomes so far."""

    project: Project
    ident: Identifier
    blind: BlindHeads | None
    backgrounds: list[np.ndarray]
    rng: np.random.Generator
    queries: int
    picture_queries: int
    notes: list[str]
    outcomes: list[QueryOutcome] = field(default_factory=list)
    pictures: list[QueryOutcome] = field(default_factory=list)
    picture_rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        seed = self.project.config.verify.seed
        self.picture_rng = np.random.default_rng([seed, 1])  # crops' draws stay as they were

    def sample(self, refs: list[ReferenceRow]) -> list[ReferenceRow]:
        """The references to test: all, or a seeded sample of ``verify.max_references``."""
        most = self.project.config.verify.max_references
        if len(refs) <= most:
            return refs
        pick = np.sort(self.rng.choice(len(refs), most, replace=False))
        self.notes.append(
            f"self-tested a seeded sample of {most} of {len(refs)} references "
            "(verify.max_references)"
        )
        return [refs[i] for i in pick]

    def test(self, ref: ReferenceRow) -> None:
        """Photograph one reference again, as crops and as whole pictures, and ask."""
        try:
            image = load_image(Path(ref.path), keep_alpha=True)
        except ImageRejected as exc:
            self.notes.append(f"skipped {ref.path}: {exc.message} (run identify index)")
            return
        strength = self.project.config.verify.strength
        crops = synth.camera_crops(
            image, self.backgrounds, self.rng, self.queries, strength=strength
        )
        fold = self.blind.fold_for(ref.label) if self.blind else None
        self._ask_crops(ref.label, crops, fold)
        for _ in range(self.picture_queries):
            bg = self.backgrounds[int(self.picture_rng.integers(len(self.backgrounds)))]
            frame = synth.camera_view(image, bg, self.picture_rng, strength=strength).frame
            self._ask_picture(ref.label, frame, fold)

    def _ask_crops(self, label: str, crops: list[np.ndarray], fold: int | None) -> None:
        """Each crop asked with its class indexed and, blind to it, hidden."""
        ident, blind = self.ident, self.blind
        if blind and fold is not None:
            known_evs, hidden_evs = blind.evidence(crops, fold)
            search: Search | None = blind.searches[fold]
        else:
            known_evs = hidden_evs = ident.evidence(crops)
            search = None
        for ev, hidden_ev in zip(known_evs, hidden_evs, strict=True):
            cache: dict[int, Geometry] = {}
            known = ident.candidates(ev, inlier_cache=cache)
            hidden = ident.candidates(hidden_ev, exclude=label, inlier_cache=cache, search=search)
            self.outcomes.append(_outcome(label, known, hidden))

    def _ask_picture(self, label: str, frame: np.ndarray, fold: int | None) -> None:
        """A whole camera frame, located as identify locates them: asked with the class
        indexed and, located again, with it hidden."""
        ident, blind = self.ident, self.blind
        space = blind.spaces[fold] if blind and fold is not None else None
        known_regions, hidden_regions = ident.regions_with_hidden(frame, label, space)
        known = _picture_ranking(ident, known_regions)
        hidden = _picture_ranking(
            ident, hidden_regions, exclude=label, search=None if space is None else space[1]
        )
        self.pictures.append(_outcome(label, known, hidden))


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
    rng = np.random.default_rng(vcfg.seed)
    ident = Identifier.open(project, embedder)
    try:
        refs = ident.store.active_references()
        if len({r.label for r in refs}) < 2:
            raise NoReferencesError("verify needs at least two classes to tell apart")
        backgrounds, bg_note = background_pool(project, rng)
        notes: list[str] = []
        blind = BlindHeads.build(project, embedder, ident, refs, notes)
        picture_n = vcfg.picture_queries if project.config.locate.enabled else 0
        if picture_n and getattr(embedder, "head", None) is not None and blind is None:
            picture_n = 0
            notes.append(
                "whole pictures keep the crops' thresholds: with a projection head "
                "their unknown pass needs fold heads"
            )
        n_queries = queries_per_reference or vcfg.queries_per_reference
        run = _SelfTest(project, ident, blind, backgrounds, rng, n_queries, picture_n, notes)
        for ref in run.sample(refs):
            run.test(ref)
            if progress is not None:
                progress(1)
        if not run.outcomes:
            raise NoReferencesError("no reference could be read for the self-test")
        report = _report(project, embedder, refs, run, write, bg_note)
    finally:
        ident.close()
    report.seconds = time.perf_counter() - started
    return report


def _report(
    project: Project,
    embedder: Embedder,
    refs: list[ReferenceRow],
    run: _SelfTest,
    write: bool,
    bg_note: str,
) -> VerifyReport:
    """Thresholds chosen from the outcomes, written into the project with ``write``."""
    vcfg, outcomes, notes = project.config.verify, run.outcomes, run.notes
    margins = np.array([o.margin for o in outcomes])
    u_scores = np.array(
        [o.unknown_ranking[0].score if o.unknown_ranking else 0.0 for o in outcomes]
    )
    acc, thr, mar, k_rate, u_rate = _rank_thresholds(outcomes, vcfg.expected_unknown_share)
    median = float(np.median(margins))
    explicit = [
        t.name for t in project.config.taxonomies if t.threshold is not None or t.margin is not None
    ]
    if explicit:
        notes.append("taxonomies with explicit thresholds keep them: " + ", ".join(explicit))
    picture_report, picture_cal = _picture_pass(run.pictures, vcfg.expected_unknown_share)
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
        top1_accuracy=float(np.mean([o.top1 == o.label for o in outcomes])),
        margin_median=median,
        margin_p10=float(np.percentile(margins, 10)),
        verdict=margin_verdict(median),
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
        seconds=0.0,
        backgrounds=bg_note,
        pictures=picture_report,
        notes=notes,
    )


def _picture_pass(
    pictures: list[QueryOutcome], unknown_share: float
) -> tuple[dict[str, Any] | None, dict[str, float]]:
    """The whole-picture pass's report and calibration (both empty when it did not run)."""
    if not pictures:
        return None, {}
    p_acc, p_thr, p_mar, p_known, p_unknown = _rank_thresholds(pictures, unknown_share)
    report = {
        "queries": len(pictures),
        "top1_accuracy": round(float(np.mean([o.top1 == o.label for o in pictures])), 4),
        "threshold": p_thr,
        "margin_threshold": p_mar,
        "known_accept_rate": round(p_known, 4),
        "unknown_reject_rate": round(p_unknown, 4),
        "predicted_open_set_accuracy": round(p_acc, 4),
    }
    calibration = {
        "picture_threshold": p_thr,
        "picture_margin": p_mar,
        "picture_predicted_open_set_accuracy": round(p_acc, 4),
    }
    return report, calibration


def verify_project(
    ref: str, queries: int | None = None, write: bool = True, stage: Stage = quiet
) -> VerifyReport:
    """``identify verify``: load and check the project, then ``run_verify`` under the
    writer lock, one progress step per reference tested.

    Raises:
        ProjectConfigError, ModelUnavailableError, NotIndexedError: see ``preflight``.
        NoReferencesError: fewer than two classes.
        ConflictError: another process holds the project (a running server).
    """
    project = open_project(ref)
    preflight(project, indexed=True)
    embedder = project_embedder(project.config)
    tested = min(reference_count(project), project.config.verify.max_references)
    with (
        writer_lock(project, "identify verify"),
        stage("self-testing references", tested) as update,
    ):
        return run_verify(
            project, embedder, queries_per_reference=queries, write=write, progress=update
        )
