"""The second stage of identification: the shortlisted classes re-ranked by local
features and their homography, every ranked class by its colour layout, and flat
references by the query aligned with them pixel by pixel (``vision.aligned``).

``Identifier`` is a ``SecondStage``: this half holds the per-reference caches and the
re-ranking, the other the search, the windows and the decision.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.engine.catalog.store import Store
from server.engine.decide.decision import Candidate, with_scores
from server.engine.errors import ImageRejected
from server.engine.project.config import Project
from server.engine.vision import aligned, appearance
from server.engine.vision.images import load_image
from server.engine.vision.localfeatures import (
    FEATURE_KIND,
    Geometry,
    LocalFeatures,
    geometric_bonus,
    match,
    outline,
)

FLAT_CACHE = 2048
"""Flat references kept in memory (about 100 kB each): a catalogue of a million is
shortlisted a few at a time, and re-reading one costs a decode."""


@dataclass(frozen=True)
class Evidence:
    """What the second stage needs from a query: its embedding, local features and
    colour layouts (None where that part of the second stage is off)."""

    vector: np.ndarray
    features: LocalFeatures | None
    layouts: tuple[appearance.Layout, ...] | None = None
    pixels: np.ndarray | None = None
    """The query picture itself, for the aligned comparison of flat things (None where
    that is off)."""
    outline: np.ndarray | None = None
    """The flat thing's corners in ``pixels`` when a detector knew them (a rectified
    crop: its own frame); None to look for them."""


class SecondStage:
    """Re-ranking of a query's candidates (see the module's description)."""

    project: Project
    store: Store
    _ref_features: dict[int, LocalFeatures]
    _ref_layouts: dict[int, appearance.Layout | None]
    _ref_flats: dict[int, aligned.Flat | None]
    _layout_lock: threading.Lock

    def reference_features(self, ref_id: int) -> LocalFeatures | None:
        """Stored local features of a reference (cached)."""
        cached = self._ref_features.get(ref_id)
        if cached is None:
            row = self.store.features(ref_id, FEATURE_KIND)
            if row is None:
                return None
            cached = LocalFeatures(*row)
            self._ref_features[ref_id] = cached
        return cached

    def reference_layout(self, ref_id: int) -> appearance.Layout | None:
        """Stored colour layout of a reference (cached); None if it has none."""
        with self._layout_lock:
            if ref_id not in self._ref_layouts:
                row = self.store.layout(ref_id)
                self._ref_layouts[ref_id] = (
                    None if row is None else appearance.Layout.from_bytes(*row)
                )
            return self._ref_layouts[ref_id]

    def reference_flat(self, ref_id: int) -> aligned.Flat | None:
        """A reference's canonical image for the aligned comparison (the last
        ``FLAT_CACHE`` cached), read from its file; None when it is not a flat rectangle
        or cannot be read."""
        with self._layout_lock:
            if ref_id in self._ref_flats:
                return self._ref_flats[ref_id]
        row = self.store.references_by_id([ref_id]).get(ref_id)
        flat = None
        if row is not None:
            try:
                flat = aligned.flat_reference(load_image(Path(row.path), keep_alpha=True))
            except (ImageRejected, OSError):
                flat = None
        with self._layout_lock:
            if len(self._ref_flats) >= FLAT_CACHE:  # the oldest out (dicts keep order)
                self._ref_flats.pop(next(iter(self._ref_flats)))
            self._ref_flats[ref_id] = flat
        return flat

    def _aligned(
        self,
        query: Evidence,
        shortlisted: Sequence[Candidate],
        cache: dict[int, Geometry],
        fallback: Callable[[], np.ndarray | None],
    ) -> dict[int, float]:
        """The aligned similarity of a query with each of ``shortlisted`` whose
        reference is flat (by reference id).

        The query is warped onto a reference along the reference's outline in the
        query: from the second stage's homography to it when that has enough inliers,
        else ``fallback()`` (an outline found otherwise, in either upright orientation;
        warped once per reference size). Every one is compared as warped; the
        ``rerank.aligned_refined`` that correlate best are aligned to the pixel (ECC)
        and compared again, the rest keep their plain correlation."""
        if query.pixels is None:
            return {}
        warps: dict[tuple[int, int], list[aligned.Seen]] = {}
        screened: dict[int, tuple[aligned.Seen, float, aligned.Flat]] = {}
        for cand in shortlisted:
            flat = self.reference_flat(cand.reference_id)
            if flat is None:
                continue
            quad = self._mapped_outline(
                query, cand.reference_id, cache.get(cand.reference_id), flat.box
            )
            if quad is not None:
                views = [aligned.warped(query.pixels, quad, flat.size)]
            else:
                if flat.size not in warps:
                    found = fallback()
                    quads = [] if found is None else aligned.upright(found, flat.size)
                    warps[flat.size] = [aligned.warped(query.pixels, q, flat.size) for q in quads]
                views = warps[flat.size]
            seen = aligned.screened(views, flat)
            if seen is not None:
                screened[cand.reference_id] = (seen[0], seen[1], flat)
        refined = self.project.config.rerank.aligned_refined
        best = sorted(screened, key=lambda ref_id: -screened[ref_id][1])[:refined]
        return {
            ref_id: aligned.refined(view, flat) if ref_id in best else plain
            for ref_id, (view, plain, flat) in screened.items()
        }

    def _mapped_outline(
        self,
        query: Evidence,
        ref_id: int,
        geometry: Geometry | None,
        box: tuple[int, int, int, int] | None = None,
    ) -> np.ndarray | None:
        """The reference's outline (of ``box`` in it) in the query through the second
        stage's homography, when it has enough inliers."""
        inliers, homography = geometry if geometry is not None else (0, None)
        if (
            homography is None
            or query.features is None
            or inliers < self.project.config.rerank.min_inliers
        ):
            return None
        ref = self.reference_features(ref_id)
        return None if ref is None else outline(query.features, ref, homography, box)

    def _outline_fallback(
        self, query: Evidence, shortlisted: Sequence[Candidate], cache: dict[int, Geometry]
    ) -> Callable[[], np.ndarray | None]:
        """The flat thing's outline in the query when a reference has no homography of
        its own, found once on first use: the outline the quad finder sees in the query,
        else the outline of the shortlisted flat reference with the most inliers (one
        deck's cards share their outline: the homography to the wrong card still knows
        where the card is)."""
        found: list[np.ndarray | None] = []

        def outline_once() -> np.ndarray | None:
            if not found and query.pixels is not None:
                quad = query.outline if query.outline is not None else aligned.outline(query.pixels)
                if quad is None:
                    best = sorted(
                        (c for c in shortlisted if c.reference_id in cache),
                        key=lambda c: -cache[c.reference_id][0],
                    )
                    for cand in best:
                        flat = self.reference_flat(cand.reference_id)
                        if flat is not None:
                            geometry = cache[cand.reference_id]
                            quad = self._mapped_outline(
                                query, cand.reference_id, geometry, flat.box
                            )
                            if quad is not None:
                                break
                found.append(quad)
            return found[0] if found else None

        return outline_once

    def rerank(
        self,
        query: Evidence,
        ranked: list[Candidate],
        inlier_cache: dict[int, Geometry] | None = None,
    ) -> list[Candidate]:
        """Add the geometric bonus and the aligned comparison to the shortlisted
        classes and the colour-layout term to every ranked class, and sort again. (The
        layout moves a score down as well as up and costs microseconds: a class below
        the shortlist must not overtake one the layout has judged just because nobody
        compared its layout.)"""
        rr = self.project.config.rerank
        cache = {} if inlier_cache is None else inlier_cache
        shortlisted = ranked[: rr.shortlist]
        if query.features is not None:
            for cand in shortlisted:
                if cand.reference_id not in cache:
                    ref = self.reference_features(cand.reference_id)
                    cache[cand.reference_id] = (
                        match(query.features, ref, rr.min_inliers) if ref is not None else (0, None)
                    )
        fallback = self._outline_fallback(query, shortlisted, cache)
        dense = (
            self._aligned(query, ranked[: rr.aligned_shortlist], cache, fallback)
            if rr.aligned > 0
            else {}
        )
        out = list(ranked)
        for i, cand in enumerate(ranked):
            inliers: int | None = None
            homography = None
            score = cand.cosine
            if query.features is not None and i < rr.shortlist:
                inliers, homography = cache[cand.reference_id]
                score += geometric_bonus(inliers, rr.min_inliers, rr.saturation, rr.weight)
            sim = None
            if query.layouts is not None:
                ref_layout = self.reference_layout(cand.reference_id)
                sim = (
                    None if ref_layout is None else appearance.similarity(query.layouts, ref_layout)
                )
                score += appearance.appearance_bonus(sim, rr.appearance, rr.appearance_centre)
            corr = dense.get(cand.reference_id)
            score += aligned.bonus(corr, rr.aligned, rr.aligned_centre)
            out[i] = with_scores(cand, score, inliers, homography, sim, corr)
        return sorted(out, key=lambda c: -c.score)
