"""How well a detector, and identification through it, did on reviewed pictures.

Each picture has its true objects (class and box, from the annotations) and what a
version found (box, detector score, the answer identification gave: a class or None
for unknown). Detections are matched to true objects per picture, best score first,
each to the unmatched object it overlaps most at IoU >= 0.5 (a box of the whole
picture for a located object). Then:

- ``map50``: average precision at IoU 0.5 over every detection of every picture, class
  agnostic (the detector's own job), by Ultralytics' ``compute_ap`` (COCO's 101-point
  interpolation);
- ``recall``: true objects matched; per class too;
- ``false_positives_per_picture``: detections that match nothing (background pictures
  included);
- ``open_set_accuracy``: per true object, right when its detection's answer is its class
  (a class the index knows) or unknown (a class it does not); a missed object is wrong;
  a detection that matches nothing and names a class is a false accept, counted wrong
  too (issue 16's per-object rule).

Two identification versions (heads, embedders) are judged on reviewed crops instead
(``score_answers``): each crop's true answer is its class when the index holds it, and
unknown for a class it does not hold and for a false positive (nothing of interest).
Then ``top1`` (the best candidate is the class, over the crops of known classes),
``known_accepted_right``, ``unknown_rejected`` and ``open_set_accuracy`` over all, with
recall (accepted right) per class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

IOU = 0.5

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Seen:
    """One detection and the answer given for it."""

    box: Box
    score: float
    label: str | None


@dataclass(frozen=True)
class Scored:
    """One version's numbers on a set of pictures."""

    pictures: int
    objects: int
    detections: int
    map50: float
    recall: float
    per_class_recall: dict[str, float]
    false_positives_per_picture: float
    open_set_accuracy: float

    NUMBERS: ClassVar[tuple[str, ...]] = (
        "map50",
        "recall",
        "false_positives_per_picture",
        "open_set_accuracy",
    )

    def to_json(self) -> dict[str, object]:
        return {
            "pictures": self.pictures,
            "objects": self.objects,
            "detections": self.detections,
            "map50": round(self.map50, 4),
            "recall": round(self.recall, 4),
            "per_class_recall": {k: round(v, 4) for k, v in self.per_class_recall.items()},
            "false_positives_per_picture": round(self.false_positives_per_picture, 4),
            "open_set_accuracy": round(self.open_set_accuracy, 4),
        }


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(truth: Sequence[tuple[str, Box]], seen: Sequence[Seen]) -> list[int | None]:
    """Per detection, the true object it matches (its index), or None."""
    taken: set[int] = set()
    out: list[int | None] = [None] * len(seen)
    for d in sorted(range(len(seen)), key=lambda i: -seen[i].score):
        best, best_iou = None, IOU
        for t, (_, box) in enumerate(truth):
            overlap = iou(seen[d].box, box)
            if t not in taken and overlap >= best_iou:
                best, best_iou = t, overlap
        if best is not None:
            taken.add(best)
            out[d] = best
    return out


def score(
    truths: Sequence[Sequence[tuple[str, Box]]],
    seens: Sequence[Sequence[Seen]],
    known: Collection[str],
) -> Scored:
    """A version's numbers (see the module docstring); ``known``: the classes the index
    holds, which identification should name."""
    from ultralytics.utils.metrics import compute_ap

    scores: list[float] = []
    hits: list[bool] = []
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    right = false_accepts = unmatched = 0
    for truth, seen in zip(truths, seens, strict=True):
        matched = match(truth, seen)
        total.update(label for label, _ in truth)
        answers: dict[int, str | None] = {}
        for d, t in zip(seen, matched, strict=True):
            scores.append(d.score)
            hits.append(t is not None)
            if t is None:
                unmatched += 1
                false_accepts += d.label is not None
            else:
                answers[t] = d.label
        for t, (label, _) in enumerate(truth):
            if t not in answers:
                continue
            found[label] += 1
            expected = label if label in known else None
            right += answers[t] == expected
    objects = sum(total.values())
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    tp = np.asarray(hits, dtype=float)[order]
    if objects and len(tp):
        recall_curve = np.cumsum(tp) / objects
        precision_curve = np.cumsum(tp) / np.arange(1, len(tp) + 1)
        map50 = float(compute_ap(list(recall_curve), list(precision_curve))[0])
    else:
        map50 = 0.0
    pictures = len(truths)
    return Scored(
        pictures=pictures,
        objects=objects,
        detections=len(scores),
        map50=map50,
        recall=sum(found.values()) / objects if objects else 0.0,
        per_class_recall={c: found[c] / n for c, n in sorted(total.items())},
        false_positives_per_picture=unmatched / pictures if pictures else 0.0,
        open_set_accuracy=right / (objects + false_accepts) if objects + false_accepts else 0.0,
    )


@dataclass(frozen=True)
class Answer:
    """One reviewed crop and what a version answered."""

    truth: str | None
    """The right answer: the class, when the index holds it; None: unknown."""
    top1: str | None
    """The best candidate, accepted or not."""
    label: str | None
    """The answer given (None: unknown)."""


@dataclass(frozen=True)
class IdScored:
    """An identification version's numbers on reviewed crops."""

    objects: int
    known: int
    """Crops of classes the index holds."""
    top1: float
    known_accepted_right: float
    unknown_rejected: float
    open_set_accuracy: float
    per_class_recall: dict[str, float]
    threshold: float
    margin: float
    """The thresholds it was judged at (calibrated in its own space)."""

    NUMBERS: ClassVar[tuple[str, ...]] = (
        "top1",
        "known_accepted_right",
        "unknown_rejected",
        "open_set_accuracy",
    )

    def to_json(self) -> dict[str, object]:
        return {
            "objects": self.objects,
            "known": self.known,
            **{k: round(getattr(self, k), 4) for k in self.NUMBERS},
            "per_class_recall": {k: round(v, 4) for k, v in self.per_class_recall.items()},
            "threshold": self.threshold,
            "margin": self.margin,
        }


def score_answers(answers: Sequence[Answer], threshold: float, margin: float) -> IdScored:
    """A version's numbers on reviewed crops (see the module docstring)."""

    def share(hits: Sequence[bool]) -> float:
        return sum(hits) / len(hits) if hits else 0.0

    known = [a for a in answers if a.truth is not None]
    total: Counter[str] = Counter(a.truth for a in known if a.truth is not None)
    right: Counter[str] = Counter(a.truth for a in known if a.truth and a.label == a.truth)
    return IdScored(
        objects=len(answers),
        known=len(known),
        top1=share([a.top1 == a.truth for a in known]),
        known_accepted_right=share([a.label == a.truth for a in known]),
        unknown_rejected=share([a.label is None for a in answers if a.truth is None]),
        open_set_accuracy=share([a.label == a.truth for a in answers]),
        per_class_recall={c: right[c] / n for c, n in sorted(total.items())},
        threshold=threshold,
        margin=margin,
    )
