"""Reviewed crops for ``identify train``: what people confirmed and corrected, the real
pictures a head should be judged on.

Synthetic views of the references say how a head does on what the renderer imagines a
camera does; on near-identical cards a head that won there did nothing for real photos.
So when reviews exist, each confirmed or corrected object of a class the index holds is
a real view of that class (its kept crop, else its box cut from the stored picture), and
each false positive is a real view of nothing. They are split by picture (a live track's
pictures together) *and by time*: the newest quarter of the pictures is held out, as the
pictures a head will meet next are newer than the ones it was fitted to. The rest join
the synthetic views in training; the held-out part decides whether the head goes live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.catalog.store import Store, TrainingRow
from server.engine.errors import ImageRejected
from server.engine.vision.embedders import Embedder
from server.engine.vision.images import load_image

HELD_OUT_SHARE = 0.25
"""Share of the reviewed pictures, the newest, held out."""
MIN_HELD_OUT = 20
"""Fewest held-out crops a head is judged on: with fewer, a top-1 rate's standard error
passes 0.1, more than the gaps heads make."""
BATCH = 32


@dataclass(frozen=True)
class ReviewedCrops:
    """Plain-model vectors of reviewed crops."""

    vectors: np.ndarray
    labels: np.ndarray
    """Class index of each (into the training set's classes)."""
    held_out: np.ndarray
    negatives: np.ndarray
    """False positives' crops."""
    negatives_held_out: np.ndarray
    skipped: int
    """Crops whose picture is gone or unreadable."""

    @property
    def judged(self) -> bool:
        """Whether enough are held out to judge a head on."""
        return int(self.held_out.sum()) >= MIN_HELD_OUT


def reviewed_crop(row: TrainingRow) -> np.ndarray | None:
    """A reviewed object's picture: its kept crop, else its box cut from the stored
    picture (None: gone, unreadable, or under 8 px)."""
    try:
        if row.region_path and Path(row.region_path).is_file():
            return load_image(Path(row.region_path))
        if not row.path:
            return None
        image = load_image(Path(row.path))
    except ImageRejected:
        return None
    if row.box is None:
        return image
    x0, y0, x1, y1 = (max(0, v) for v in row.box)
    crop = image[y0:y1, x0:x1]
    return crop if min(crop.shape[:2]) >= 8 else None


def held_out_groups(rows: Sequence[TrainingRow]) -> set[str]:
    """The newest ``HELD_OUT_SHARE`` of the pictures, by their first annotation (ids
    grow with time, and tell apart what one second holds)."""
    first: dict[str, int] = {}
    for row in rows:
        key = picture_key(row)
        first[key] = min(first.get(key, row.annotation_id), row.annotation_id)
    ordered = sorted(first, key=lambda k: first[k])
    keep = len(ordered) - round(len(ordered) * HELD_OUT_SHARE)
    return set(ordered[keep:])


def reviewed_crops(store: Store, embedder: Embedder, classes: Sequence[str]) -> ReviewedCrops:
    """The reviewed crops of ``classes`` and the false positives (see the module
    docstring), embedded by ``embedder`` (the plain model)."""
    class_of = {label: i for i, label in enumerate(classes)}
    every = store.training_rows(["confirmed", "corrected", "false_positive"])
    held = held_out_groups(every)
    rows = [r for r in every if r.type == "false_positive" or r.label in class_of]
    crops, labels, out, skipped = [], [], [], 0
    for row in rows:
        crop = reviewed_crop(row)
        if crop is None:
            skipped += 1
            continue
        key = picture_key(row)
        crops.append(crop)
        labels.append(-1 if row.type == "false_positive" else class_of[row.label or ""])
        out.append(key in held)
    dim = embedder.spec.dim
    vectors = np.zeros((0, dim), np.float32)
    if crops:
        vectors = np.concatenate(
            [
                embedder.embed_batch(
                    np.stack([embedder.preprocess(c) for c in crops[i : i + BATCH]])
                )
                for i in range(0, len(crops), BATCH)
            ]
        )
    y, h = np.array(labels, int), np.array(out, bool)
    positive = y >= 0
    return ReviewedCrops(
        vectors[positive], y[positive], h[positive], vectors[~positive], h[~positive], skipped
    )


def held_out_references(store: Store) -> frozenset[int]:
    """The references made of the crops ``reviewed_crops`` holds out, known before the
    training views are rendered (so they are not rendered)."""
    rows = store.training_rows(["confirmed", "corrected", "false_positive"])
    held = held_out_groups(rows)
    return frozenset(
        r.reference_id for r in rows if r.reference_id is not None and picture_key(r) in held
    )


def held_out_sources(store: Store) -> frozenset[str]:
    """The sources (as identify was told them) of the pictures ``reviewed_crops`` holds
    out: what a head may be judged on beyond its crops."""
    rows = store.training_rows(["confirmed", "corrected", "false_positive"])
    held = held_out_groups(rows)
    return frozenset(r.source for r in rows if r.source is not None and picture_key(r) in held)


def picture_key(row: TrainingRow) -> str:
    """What a crop's side of the split goes with: its live track, else its picture."""
    return f"track:{row.source}:{row.track_id}" if row.track_id else row.content_hash


def judge_on_reviewed(
    real: ReviewedCrops, train: np.ndarray, train_labels: np.ndarray, head: Any
) -> dict[str, Any]:
    """Counts, and on the held-out crops the top-1 by nearest class mean (the means of
    the training vectors) plain and with the head, and, when held-out false positives
    exist, how well each separates them from the right answers: the ROC AUC of a right
    answer's cosine against a false positive's best cosine (1: every false positive
    below every right answer)."""
    out: dict[str, Any] = {
        "trained_on": int((~real.held_out).sum()),
        "held_out": int(real.held_out.sum()),
        "negatives_held_out": int(real.negatives_held_out.sum()),
        "skipped": real.skipped,
    }
    held = real.held_out
    if not held.any():
        return out
    for suffix, project in (("_plain", lambda x: x), ("", head.project)):
        means = _means(project(train), train_labels)
        x = project(real.vectors[held])
        sims = x @ means.T
        out[f"top1{suffix}"] = round(float((sims.argmax(axis=1) == real.labels[held]).mean()), 4)
        if real.negatives_held_out.any():
            right = sims[np.arange(len(x)), real.labels[held]]
            wrong = (project(real.negatives[real.negatives_held_out]) @ means.T).max(axis=1)
            from sklearn.metrics import roc_auc_score

            scores = np.concatenate([right, wrong])
            truth = np.concatenate([np.ones(len(right)), np.zeros(len(wrong))])
            out[f"auc{suffix}"] = round(float(roc_auc_score(truth, scores)), 4)
    return out


def _means(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    means = np.zeros((int(labels.max()) + 1, vectors.shape[1]), np.float64)
    np.add.at(means, labels, vectors)
    return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
