"""verify's unknown pass with a projection head: each class hidden behind a fold head
that never saw it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.catalog.store import ReferenceRow
from server.engine.catalog.vectors import reference_vector_id
from server.engine.decide.identifier import Evidence, Identifier, Search
from server.engine.errors import ImageRejected
from server.engine.project.config import Project
from server.engine.vision.embedders import Embedder
from server.engine.vision.images import flatten_alpha, load_image


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
        # Imported here: it imports torch, which a command's start-up need not pay for.
        from server.engine.vision.embedders.projected import ProjectedEmbedder

        if not isinstance(embedder, ProjectedEmbedder):
            return None
        head = embedder.head
        if not head.folds:
            notes.append(
                "the projection head has no fold heads (too few classes): the "
                "unknown pass flatters it; expect more unknowns accepted live"
            )
            return None
        base = embedder.base
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
