"""Open-set accuracy estimated from what reviewers said, next to what ``verify``
predicted from synthetic photos of the references (which cannot see how live things
really look).

The reviewed items are not a random sample of the answers, so the estimate weighs them
by how they were drawn (a stratified estimate):

- answers rejected as unknown: every miss that passes the quality gate is queued, so
  the reviewed ones stand for all rejected answers (correct: "unknown" was right);
- accepted answers by a thin margin (``low_confidence``): all of them are queued, so
  their reviewed ones stand for that stratum;
- the other accepted answers: a systematic sample is queued (``audit``), which stands
  for the rest.

Each stratum's share of all answers comes from the recorded observations. A false
positive (nothing of interest there) is no object and counts in no stratum; nor does a
skip. The 95 % interval adds the strata's binomial variances, weighted by their shares
squared; a stratum with answers and no review leaves the estimate open (None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.96
DISAGREE = 0.10
"""The reviewed and the predicted accuracy differ by more than this: say so plainly."""


@dataclass(frozen=True)
class Stratum:
    """One way answers reach a reviewer: how many answers it holds, and of its reviewed
    ones how many were right."""

    name: str
    answers: int
    reviewed: int
    right: int


@dataclass(frozen=True)
class Estimate:
    """The reviewed estimate of open-set accuracy."""

    accuracy: float | None
    low: float | None
    high: float | None
    reviews: int
    """Reviewed answers it rests on."""
    missing: tuple[str, ...]
    """Strata with answers but no review yet (the estimate waits for them)."""


def estimate(strata: list[Stratum]) -> Estimate:
    """Weigh each stratum's share right by its share of the answers (see the module
    docstring)."""
    total = sum(s.answers for s in strata)
    reviews = sum(s.reviewed for s in strata)
    missing = tuple(s.name for s in strata if s.answers and not s.reviewed)
    if not total or missing or not reviews:
        return Estimate(None, None, None, reviews, missing)
    accuracy = variance = 0.0
    for s in strata:
        if not s.answers:
            continue
        weight = s.answers / total
        p = s.right / s.reviewed
        accuracy += weight * p
        # A stratum reviewed whole has no sampling error; else the binomial one, with
        # the finite-population correction, and never below a single review's worth.
        fpc = max(0.0, (s.answers - s.reviewed) / max(1, s.answers - 1))
        spread = max(p * (1 - p), 1 / (4 * (s.reviewed + 1)))
        variance += weight**2 * spread / s.reviewed * fpc
    half = Z95 * math.sqrt(variance)
    return Estimate(
        accuracy, max(0.0, accuracy - half), min(1.0, accuracy + half), reviews, missing
    )


def disagreement(reviewed: Estimate, predicted: float | None) -> str | None:
    """A plain warning when the reviewed and the predicted accuracy differ by more than
    ``DISAGREE``; it says so when the interval still reaches the prediction (too few
    reviews to be sure). None otherwise."""
    if reviewed.accuracy is None or predicted is None:
        return None
    gap = reviewed.accuracy - predicted
    assert reviewed.low is not None and reviewed.high is not None
    if abs(gap) <= DISAGREE:
        return None
    said = (
        f"reviewed answers say open-set accuracy is {reviewed.accuracy:.2f} "
        f"({reviewed.low:.2f}-{reviewed.high:.2f}, {reviewed.reviews} reviews), verify "
        f"predicted {predicted:.2f}"
    )
    if reviewed.low <= predicted <= reviewed.high:
        return said + ": not sure yet (the interval still reaches verify's figure); review more"
    return (
        said + ": live things do not look like the synthetic photos; add references that "
        "look like them, and re-tune thresholds from reviews"
    )


MIN_REVIEWS = 30
"""Judged answers a threshold recommendation needs at least (fewer: none is made)."""
MARGINS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12)
"""Margin thresholds tried beside the one in force."""
MAX_SCORES = 200
"""Score thresholds tried at most."""


@dataclass(frozen=True)
class Judged:
    """A reviewed answer, as re-deciding it needs."""

    stratum: str
    score: float
    margin: float
    top: str | None
    """The best candidate's label."""
    truth: str | None
    indexed: bool
    """The true class was indexed when it was answered (else "unknown" was right)."""

    def right_at(self, threshold: float, margin: float) -> bool:
        """Whether the answer would have been right at these thresholds."""
        if self.score >= threshold and self.margin >= margin:
            return self.indexed and self.top == self.truth
        return not self.indexed


@dataclass(frozen=True)
class Recommendation:
    """The thresholds under which the reviewed answers come out best."""

    threshold: float
    margin: float
    estimate: Estimate
    """The reviewed accuracy there, with its interval and the reviews it rests on."""
    current: Estimate
    """The reviewed accuracy at the thresholds in force."""
    gain: float
    """What the best pair found gains over the thresholds in force, on the same
    reviewed answers (0 when they are kept)."""
    gain_low: float
    """The low end of the gain's 95 % interval (paired: each answer against itself)."""


def recommend(
    judged: list[Judged], answers: dict[str, int], current: tuple[float, float]
) -> Recommendation | None:
    """The (score, margin) thresholds that maximise the stratified reviewed accuracy
    (each judged answer re-decided there, weighed as ``estimate`` weighs it;
    ``answers``: how many answers each stratum holds). Scores tried are the judged
    answers' own (a threshold between two of them decides the same; at most
    ``MAX_SCORES`` of them, by quantile); ties go to the pair nearest the thresholds in
    force.

    The best of many pairs looks better than it is (each pair's accuracy is noisy, and
    the largest of many noisy numbers is high by chance), so a change is recommended
    only when its gain over the thresholds in force, judged answer by answer on the same
    reviews, is above zero at the low end of its 95 % interval; otherwise the
    thresholds in force are kept, with the gain the best pair would claim. None with
    fewer than ``MIN_REVIEWS`` judged answers, or while a stratum with answers has
    none."""
    if len(judged) < MIN_REVIEWS:
        return None
    names = list(dict.fromkeys([*answers, *(j.stratum for j in judged)]))
    stratum = np.array([names.index(j.stratum) for j in judged])
    score = np.array([j.score for j in judged])
    margin = np.array([j.margin for j in judged])
    top_right = np.array([j.indexed and j.top == j.truth for j in judged])
    unknown_right = np.array([not j.indexed for j in judged])
    reviewed = np.bincount(stratum, minlength=len(names))

    def right_at(threshold: float, margin_at: float) -> np.ndarray:
        accepted = (score >= threshold) & (margin >= margin_at)
        return np.where(accepted, top_right, unknown_right)

    def at(threshold: float, margin_at: float) -> Estimate:
        counts = np.bincount(stratum, weights=right_at(threshold, margin_at), minlength=len(names))
        return estimate(
            [
                Stratum(n, answers.get(n, 0), int(reviewed[i]), int(counts[i]))
                for i, n in enumerate(names)
            ]
        )

    now = at(*current)
    if now.accuracy is None:
        return None
    scores = np.unique(np.round(score, 4))
    if len(scores) > MAX_SCORES:
        scores = np.unique(np.quantile(score, np.linspace(0, 1, MAX_SCORES)).round(4))
    tried = []
    for margin_at in sorted(set(MARGINS) | {round(current[1], 4)}):
        for threshold in [*scores.tolist(), round(current[0], 4)]:
            accuracy = at(threshold, margin_at).accuracy
            assert accuracy is not None
            distance = abs(threshold - current[0]) + abs(margin_at - current[1])
            tried.append((round(accuracy, 9), -distance, threshold, margin_at))
    _, _, threshold, margin_at = max(tried)
    diff = right_at(threshold, margin_at).astype(float) - right_at(*current).astype(float)
    total = sum(answers.get(n, 0) for n in names)
    gain = variance = 0.0
    for i, name in enumerate(names):
        rows, held = diff[stratum == i], answers.get(name, 0)
        if not held or not len(rows):
            continue
        # Answers to come are what the thresholds are for: no finite-population
        # correction here, and never less spread than a single review's worth.
        weight = held / total
        gain += weight * float(rows.mean())
        spread = max(float(rows.var(ddof=1)) if len(rows) > 1 else 1.0, 1 / (4 * (len(rows) + 1)))
        variance += weight**2 * spread / len(rows)
    low = gain - Z95 * math.sqrt(variance)
    if low <= 0:
        threshold, margin_at = current
    return Recommendation(
        float(threshold), float(margin_at), at(threshold, margin_at), now, gain, low
    )
