"""Identification of an image (or a crop): embed -> search -> second stage -> decide."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from server.engine.catalog.store import Store
from server.engine.catalog.vector_index import VectorIndex
from server.engine.catalog.vectors import open_or_none
from server.engine.decide.decision import (
    Candidate,
    Decision,
    Thresholds,
    aggregate,
    decide,
    resolve_thresholds,
    with_overrides,
)
from server.engine.decide.second_stage import Evidence, SecondStage
from server.engine.errors import NotIndexedError
from server.engine.project.config import Project
from server.engine.vision import aligned, appearance
from server.engine.vision.embedders import Embedder
from server.engine.vision.localfeatures import Geometry, LocalFeatures, extract, outline
from server.engine.vision.locate import Box, Window, shortlist, to_box, window_vectors

LAYOUT_SEARCH_CLASSES = 3
"""Classes whose reference layout is searched for in a whole picture (``_layout_box``)."""
LAYOUT_BOX_GROW = 0.05
"""The found box is grown by this share of its side on each side, as a detector's is."""

Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
"""(queries (n, dim), k) -> (keys (n, k), similarities (n, k)), like ``VectorIndex.search``."""


@dataclass(frozen=True)
class Region:
    """A part of a picture considered as the object: where, its pixels, its evidence."""

    box: Box | None
    """x0, y0, x1, y1 in the picture; None for the whole picture."""
    image: np.ndarray
    evidence: Evidence


class Identifier(SecondStage):
    """Answers "which reference is this?" for images, using a project's index."""

    def __init__(
        self,
        project: Project,
        embedder: Embedder,
        store: Store,
        index: VectorIndex,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.project = project
        self.embedder = embedder
        self.store = store
        self.index = index
        refs = store.active_references()
        self.labels = {r.id: r.label for r in refs}
        self.rarity = {r.id: r.rarity for r in refs if r.rarity}
        """Rarity codes the naming rules split off reference file names, by reference."""
        self.taxonomy_of = {r.label: r.taxonomy for r in refs}
        # The project's thresholds with the overrides set through the API, so that a
        # command (match, label, reapply) decides as the server would.
        self.thresholds = thresholds or with_overrides(
            resolve_thresholds(project.config, embedder.spec), store.threshold_overrides()
        )
        self._ref_features: dict[int, LocalFeatures] = {}
        self._ref_layouts: dict[int, appearance.Layout | None] = {}
        self._ref_flats: dict[int, aligned.Flat | None] = {}
        self._layout_lock = threading.Lock()  # ``regions`` reads layouts on worker threads

    @classmethod
    def open(cls, project: Project, embedder: Embedder) -> Identifier:
        """Open the project's database and index for identification.

        Raises:
            NotIndexedError: ``identify index`` has not been run.
            IndexMismatchError: the index was built with another model.
        """
        index = open_or_none(project, embedder)
        if index is None or not project.db_path.exists():
            raise NotIndexedError(
                f"project '{project.name}' has no index yet: run `identify index "
                f"--project {project.file}` first"
            )
        return cls(project, embedder, Store(project.db_path), index)

    def close(self) -> None:
        """Release the database connection."""
        self.store.close()

    def set_reference(
        self, ref_id: int, label: str, taxonomy: str, rarity: str | None = None
    ) -> None:
        """Make a newly indexed reference known to the decision."""
        self.labels[ref_id] = label
        if rarity:
            self.rarity[ref_id] = rarity
        self.taxonomy_of.setdefault(label, taxonomy)

    def drop_references(self, ref_ids: Sequence[int]) -> None:
        """Forget references taken out of the index."""
        for ref_id in ref_ids:
            label = self.labels.pop(ref_id, None)
            self.rarity.pop(ref_id, None)
            self._ref_features.pop(ref_id, None)
            self._ref_layouts.pop(ref_id, None)
            self._ref_flats.pop(ref_id, None)
            if label is not None and label not in self.labels.values():
                self.taxonomy_of.pop(label, None)

    def rename_class(self, old: str, new: str) -> None:
        """Give every reference of ``old`` the label ``new``."""
        for ref_id, label in self.labels.items():
            if label == old:
                self.labels[ref_id] = new
        taxonomy = self.taxonomy_of.pop(old, None)
        if taxonomy is not None:
            self.taxonomy_of.setdefault(new, taxonomy)

    @property
    def classes(self) -> list[str]:
        """Labels of every indexed class."""
        return sorted(set(self.labels.values()))

    def evidence(
        self, images: Sequence[np.ndarray], vectors: np.ndarray | None = None
    ) -> list[Evidence]:
        """Embed images in one batch (unless their ``vectors`` are given) and extract
        their local features and colour layouts."""
        vecs = (
            vectors
            if vectors is not None
            else self.embedder.embed_batch(
                np.stack([self.embedder.preprocess(im) for im in images])
            )
        )
        rr = self.project.config.rerank
        feats = [extract(im, rr.max_features) if rr.enabled else None for im in images]
        layouts = [
            appearance.query_layouts(im) if rr.enabled and rr.appearance > 0 else None
            for im in images
        ]
        keep = rr.enabled and rr.aligned > 0
        return [
            Evidence(v, f, lay, im if keep else None)
            for v, f, lay, im in zip(vecs, feats, layouts, images, strict=True)
        ]

    def identify(self, images: Sequence[np.ndarray]) -> list[Decision]:
        """Decide for each image, taken as one crop of one object."""
        if not images:
            return []
        return [self.decide(ev) for ev in self.evidence(images)]

    def regions(
        self,
        image: np.ndarray,
        exclude: str | None = None,
        space: tuple[Embedder, Search] | None = None,
    ) -> list[Region]:
        """The whole picture and, with ``locate`` on, the windows of it most likely to
        hold a known thing, each with its evidence (see ``locate``). Runs the model; may
        run on several threads at once. ``exclude`` locates as if that class were not
        indexed (``identify verify``'s unknown pass); ``space`` (an embedder and a search
        of the references in its space) replaces the project's embedder and index for
        that (verify asks through a fold head that never saw the class)."""
        embedder = self.embedder if space is None else space[0]
        return self._regions(image, exclude, space, self._windows(embedder, image), {})

    def regions_with_hidden(
        self, image: np.ndarray, hidden: str, space: tuple[Embedder, Search] | None = None
    ) -> tuple[list[Region], list[Region]]:
        """``regions(image)`` and ``regions(image, exclude=hidden, space=space)`` (verify
        asks every picture both ways). In the same space the two share the feature map
        and the evidence of every region they both find: computed once."""
        known = self.regions(image)
        if space is not None:
            return known, self.regions(image, hidden, space)
        windows = self._windows(self.embedder, image)
        return known, self._regions(
            image, hidden, None, windows, {r.box: r.evidence for r in known}
        )

    def _windows(
        self, embedder: Embedder, image: np.ndarray
    ) -> tuple[list[Window], np.ndarray] | None:
        """The windows and their vectors (``locate``), None with locating off."""
        loc = self.project.config.locate
        return window_vectors(embedder, image) if loc.enabled and loc.candidates else None

    def _regions(
        self,
        image: np.ndarray,
        exclude: str | None,
        space: tuple[Embedder, Search] | None,
        windows: tuple[list[Window], np.ndarray] | None,
        known: dict[Box | None, Evidence],
    ) -> list[Region]:
        """``regions`` from the picture's windows; ``known`` holds evidence already
        computed for some boxes (in the same space)."""
        embedder, search = space if space is not None else (self.embedder, None)
        crops: list[tuple[Box | None, np.ndarray]] = [(None, image)]
        loc = self.project.config.locate
        if windows is not None:
            h, w = image.shape[:2]
            wins, vectors = windows
            keys, sims = self._nearest(vectors, exclude, search)
            for win in shortlist(wins, sims, loc.candidates):
                x0, y0, x1, y1 = box = to_box(win, w, h)
                crops.append((box, image[y0:y1, x0:x1]))
            found = self._layout_box(image, keys, sims) if loc.layout_search else None
            if found is not None:
                x0, y0, x1, y1 = found
                crops.append((found, image[y0:y1, x0:x1]))
        todo = [crop for box, crop in crops if box not in known]
        if todo:
            fresh = iter(
                self.evidence(
                    todo,
                    None
                    if space is None
                    else embedder.embed_batch(np.stack([embedder.preprocess(im) for im in todo])),
                )
            )
            known = {**known, **{box: next(fresh) for box, _ in crops if box not in known}}
        return [Region(box, crop, known[box]) for box, crop in crops]

    def _nearest(
        self, vectors: np.ndarray, exclude: str | None = None, search: Search | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each vector's nearest reference (key, similarity; -1 and -inf for none),
        leaving out the references of class ``exclude``; ``search`` replaces the index."""
        if not len(vectors):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        k = 1 if exclude is None else self.project.config.index.top_k
        keys, sims = (search or self.index.search)(vectors, k)
        best_keys = np.full(len(vectors), -1, np.int64)
        best_sims = np.full(len(vectors), -np.inf, np.float32)
        for row in range(len(vectors)):
            for key, sim in zip(keys[row].tolist(), sims[row].tolist(), strict=True):
                if key >= 0 and self.labels.get(int(key), exclude) != exclude:
                    best_keys[row], best_sims[row] = key, sim
                    break
        return best_keys, best_sims

    def _layout_box(self, image: np.ndarray, keys: np.ndarray, sims: np.ndarray) -> Box | None:
        """The box whose colour layout best matches one of the references the windows
        look most like (``LAYOUT_SEARCH_CLASSES`` classes, best window first: ``keys``
        and ``sims`` are each window's nearest reference), grown a little; None when no
        such reference has a layout. A window is square and snaps to the feature map's
        grid; this box has the reference's shape and is placed to the search's pixel,
        which is what textureless things need."""
        refs: dict[str, int] = {}
        for row in np.argsort(-sims, kind="stable"):
            label = self.labels.get(int(keys[row]))
            if label is not None and label not in refs:
                refs[label] = int(keys[row])
                if len(refs) == LAYOUT_SEARCH_CLASSES:
                    break
        best: tuple[float, Box] | None = None
        for ref_id in refs.values():
            ref_layout = self.reference_layout(ref_id)
            hit = appearance.find(image, ref_layout) if ref_layout is not None else None
            if hit is not None and (best is None or hit[0] > best[0]):
                best = hit
        if best is None:
            return None
        h, w = image.shape[:2]
        x0, y0, x1, y1 = best[1]
        gx, gy = (x1 - x0) * LAYOUT_BOX_GROW, (y1 - y0) * LAYOUT_BOX_GROW
        box = (
            max(0, int(x0 - gx)),
            max(0, int(y0 - gy)),
            min(w, int(x1 + gx)),
            min(h, int(y1 + gy)),
        )
        return box if box[2] - box[0] >= 2 and box[3] - box[1] >= 2 else None

    def decide_regions(self, regions: Sequence[Region]) -> tuple[Decision, Region]:
        """The decision for the region that matches best (the whole picture on a tie;
        ``regions[0]`` must be the whole picture). When the second stage found the
        reference's geometry in the winner, its box is the reference's outline."""
        decided = [(self.decide(r.evidence, picture=True), r) for r in regions]
        decision, region = max(decided, key=lambda dr: dr[0].score)
        h, w = regions[0].image.shape[:2]
        return decision, replace(region, box=self._outline_box(decision, region, w, h))

    def _outline_box(
        self, decision: Decision, region: Region, width: int, height: int
    ) -> Box | None:
        """The bounding box of the matched reference's outline in the picture, from the
        second stage's homography; the region's own box when there is none."""
        top = decision.candidates[0] if decision.candidates else None
        query = region.evidence.features
        if (
            top is None
            or query is None
            or top.homography is None
            or top.inliers is None
            or top.inliers < self.project.config.rerank.min_inliers
        ):
            return region.box
        ref = self.reference_features(top.reference_id)
        quad = outline(query, ref, top.homography) if ref is not None else None
        if quad is None:
            return region.box
        ox, oy = region.box[:2] if region.box is not None else (0, 0)
        x0, y0 = np.floor(quad.min(axis=0)).astype(int) + (ox, oy)
        x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + (ox, oy)
        box = (max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1)))
        return box if box[0] < box[2] and box[1] < box[3] else region.box

    def identify_picture(self, image: np.ndarray) -> tuple[Decision, Region]:
        """Find and identify the object in a whole picture."""
        return self.decide_regions(self.regions(image))

    def candidates(
        self,
        ev: Evidence,
        exclude: str | None = None,
        inlier_cache: dict[int, Geometry] | None = None,
        search: Search | None = None,
    ) -> list[Candidate]:
        """Per-class ranking of one query, re-ranked by the second stage.

        ``exclude`` drops one class before re-ranking, as if it were not indexed (the
        leave-class-out pass of ``identify verify``). ``inlier_cache`` (reference id ->
        inliers) lets two rankings of the same query share second-stage work. ``search``
        replaces the index (verify searches the references as a fold head maps them).
        """
        k = self.project.config.index.top_k + (
            self.project.config.rerank.shortlist if exclude else 0
        )
        keys, sims = (search or self.index.search)(ev.vector[None, :], k)
        ranked = aggregate(keys[0], sims[0], self.labels)
        if exclude is not None:
            ranked = [c for c in ranked if c.label != exclude]
        if ev.features is not None or ev.layouts is not None or ev.pixels is not None:
            ranked = self.rerank(ev, ranked, inlier_cache)
        return ranked

    def decide(self, ev: Evidence, picture: bool = False) -> Decision:
        """The decision for one query's evidence (a crop, or a region of a picture)."""
        ranked = self.candidates(ev)
        return self.with_rarity(decide(ranked, self.thresholds, self.taxonomy_of, picture=picture))

    def with_rarity(self, decision: Decision) -> Decision:
        """``decision`` with the rarity of the reference it accepted, if it has one."""
        ref = decision.reference_id
        rarity = self.rarity.get(ref) if decision.matched and ref is not None else None
        return replace(decision, rarity=rarity) if rarity else decision
