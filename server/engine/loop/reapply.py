"""Retroactive re-application: every stored observation decided again, from its stored
vector, against the references and thresholds in force now.

No image is decoded for most: the index is searched with the stored vector (a batch at
a time) and each class found gets the second-stage evidence stored with the old
decision for the same reference (its bonus, ``score - cosine``: geometry, colour
layout, aligned comparison). A reference that existed when the answer was decided but
is not among its stored candidates ranked below all of them then, so it keeps its
cosine, capped at the lowest stored score. Only a reference added since (a new
reference, or a class named by a reviewer) has no evidence: the second stage is re-run
for that answer from its kept picture (a queued item's region, or a separate
taxonomy's auto-label picture), and where none is kept the new reference is compared by
its cosine alone. Answers stored in another vector space (before a model change) are
left as they were and counted.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from server import contract
from server.engine.catalog.making import reference_bytes
from server.engine.catalog.store import Reapplication, Store, StoredDecision, now_iso
from server.engine.decide.decision import Candidate, Decision, aggregate, decide, with_scores
from server.engine.decide.identifier import Identifier
from server.engine.errors import IdentifyError
from server.engine.loop.outbox import EventSink, queue_event, tell
from server.engine.project.config import DEFAULT_TAXONOMY
from server.engine.vision.images import decode_image, flatten_alpha

BATCH = 1000
"""Observations re-decided per transaction (and per index search)."""
LIVE_BATCH = 250
"""The same on a server, where identification waits for each batch (about 50 ms)."""


@dataclass(frozen=True)
class Redecided:
    """One observation decided again."""

    row: StoredDecision
    decision: Decision
    missing: bool
    """A class found had no stored second-stage evidence (a reference added since)."""
    rerun: bool
    """The second stage was run again from the kept picture."""


PictureOf = Callable[[StoredDecision], np.ndarray | None]
"""The kept picture of an observation's object (None when none is kept)."""


def redecide(
    ident: Identifier, rows: Sequence[StoredDecision], picture_of: PictureOf
) -> list[Redecided]:
    """Decide each of ``rows`` again (see the module docstring)."""
    if not rows:
        return []
    vectors = np.stack([np.frombuffer(r.vector, np.float32) for r in rows])
    keys, sims = ident.index.search(vectors, ident.project.config.index.top_k)
    rr = ident.project.config.rerank
    out = []
    for i, row in enumerate(rows):
        ranked = aggregate(keys[i], sims[i], ident.labels)
        scored, missing = _with_stored_evidence(ranked, row, rr.enabled, rr.shortlist)
        rerun = False
        if missing:
            picture = picture_of(row)
            if picture is not None:
                [ev] = ident.evidence([picture], vectors=vectors[i : i + 1])
                scored, rerun = ident.rerank(ev, ranked), True
        located = bool(row.provenance.get("picture", row.bbox is None))
        decision = ident.with_rarity(
            decide(scored, ident.thresholds, ident.taxonomy_of, picture=located)
        )
        out.append(Redecided(row, decision, missing, rerun))
    return out


def _with_stored_evidence(
    ranked: list[Candidate], row: StoredDecision, second_stage: bool, shortlist: int
) -> tuple[list[Candidate], bool]:
    """The classes found, each scored with its reference's stored evidence; and whether
    one lacked it (added since the answer was decided)."""
    if not second_stage:
        return ranked, False
    stored = {int(c["reference_id"]): c for c in row.candidates if "reference_id" in c}
    floor = min((float(c["score"]) for c in stored.values()), default=None)
    out: list[Candidate] = []
    missing = False
    for cand in ranked:
        old = stored.get(cand.reference_id)
        if old is not None:
            bonus = float(old["score"]) - float(old["cosine"])
            out.append(
                with_scores(
                    cand,
                    cand.cosine + bonus,
                    old.get("inliers"),
                    None,
                    old.get("appearance"),
                    old.get("aligned"),
                )
            )
        elif cand.reference_id < row.image_id and floor is not None:
            # It was there and ranked below every stored candidate.
            out.append(replace(cand, score=min(cand.cosine, floor)))
        else:
            # Added since: its evidence matters where the second stage compares
            # geometry (the shortlist by cosine); below, its cosine stands.
            missing = missing or len(out) < shortlist
            out.append(cand)
    return sorted(out, key=lambda c: -c.score), missing


COUNTS = (
    "seen",
    "newly_labelled",
    "relabelled",
    "unlabelled",
    "unchanged",
    "resolved",
    "second_stage",
    "second_stage_rerun",
    "other_space",
)
"""What a re-application counts (see ``contract.ReapplyCounts``)."""


@dataclass(frozen=True)
class Step:
    """What one batch did."""

    done: bool
    """The run reached its end."""
    seen: int
    resolved: list[tuple[int, str]]
    """Review items resolved as ``auto``, with the label they match now."""


def start(store: Store, space: str) -> tuple[Reapplication, bool]:
    """The re-application to run: the one a crash stopped (resumed where it was: True),
    or a new one over every observation recorded so far (False)."""
    run = store.running_reapplication()
    if run is not None and run.space == space:
        return run, True
    return store.start_reapplication(space), False


def to_json(run: Reapplication, remaining_now: int, running_here: bool) -> contract.Reapplication:
    """The API shape of a run; ``running_here``: a job of this process runs it (a
    ``running`` row that none runs was stopped by a crash: ``interrupted``)."""
    counts = {k: int(run.counts.get(k, 0)) for k in COUNTS}
    status = run.status
    if status == "running" and not running_here:
        status = "interrupted"
    return {
        "id": run.id,
        "status": status,
        "done": counts["seen"],
        "total": counts["seen"] + remaining_now,
        "counts": {
            "seen": counts["seen"],
            "newly_labelled": counts["newly_labelled"],
            "relabelled": counts["relabelled"],
            "unlabelled": counts["unlabelled"],
            "unchanged": counts["unchanged"],
            "resolved": counts["resolved"],
            "second_stage": counts["second_stage"],
            "second_stage_rerun": counts["second_stage_rerun"],
            "other_space": counts["other_space"],
        },
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def kept_picture(store: Store) -> PictureOf:
    """Where a re-application finds an object's kept picture: a queued item's region
    (what a label would make a reference of), else a separate taxonomy's auto-label
    picture; None when none is kept (or it is gone)."""

    def picture_of(row: StoredDecision) -> np.ndarray | None:
        try:
            if row.review_id is not None:
                item = store.review_item(row.review_id)
                data = reference_bytes(item, item.box, item.region)
            elif row.path:
                data = Path(row.path).read_bytes()
            else:
                return None
            return flatten_alpha(decode_image(data, "kept picture"))
        except (IdentifyError, OSError):
            return None

    return picture_of


def remaining(store: Store, run: Reapplication) -> int:
    """Observations the run has still to re-decide."""
    return store.observations_in(run.space, run.cursor, run.upto)[0]


def apply_batch(
    ident: Identifier,
    run: Reapplication,
    picture_of: PictureOf,
    resolve: bool,
    size: int = BATCH,
    sink: EventSink | None = None,
) -> tuple[Reapplication, Step]:
    """Re-decide the next ``size`` observations of ``run`` and write what changed, the
    resolved items (``resolve``: pending misses that now match, as ``auto``) and the
    run's cursor, in one transaction, with what is told of it (each item resolved, and
    the run's end; ``sink`` hears of them once written): a crash loses at most this
    batch, which the next run does again. Returns the run as it stands and what the
    batch did."""
    store = ident.store
    rows = store.stored_decisions(run.space, run.cursor, run.upto, size)
    counts = {k: int(run.counts.get(k, 0)) for k in COUNTS}
    if not counts["other_space"]:
        counts["other_space"] = store.observations_in(run.space, 0, 0)[1]
    resolved: list[tuple[int, str]] = []
    with store.transaction():
        for item in redecide(ident, rows, picture_of):
            kind = _change(item)
            counts["seen"] += 1
            counts[kind] += 1
            counts["second_stage"] += item.missing
            counts["second_stage_rerun"] += item.rerun
            row, decision = item.row, item.decision
            if kind != "unchanged" or _rescored(row, decision):
                top = decision.candidates[0].label if decision.candidates else ""
                store.redecide(
                    row.id,
                    decision.to_json(bbox=row.bbox),
                    ident.taxonomy_of.get(top, DEFAULT_TAXONOMY),
                    (decision.threshold, decision.margin_threshold),
                )
            if (
                resolve
                and decision.matched
                and row.review_id is not None
                and row.review_status == "pending"
                and row.review_reason not in ("audit", "low_confidence")
            ):
                store.mark_resolved(row.review_id, "auto", decision.label, None)
                counts["resolved"] += 1
                resolved.append((row.review_id, str(decision.label)))
                event = queue_event(store, "resolved", row.review_id, "auto", decision.label)
                tell(store, event, sink)
        cursor = rows[-1].id if rows else run.upto
        done = not rows or len(rows) < size
        store.advance_reapplication(run.id, cursor, counts, done=done)
        if done:
            finished: contract.ReapplyEvent = {
                "type": "reapply",
                "action": "finished",
                "id": run.id,
                "counts": typing.cast(contract.ReapplyCounts, dict(counts)),
                "at": time.time(),
            }
            tell(store, finished, sink)
    run = replace(
        run,
        cursor=cursor,
        counts=counts,
        status="done" if done else "running",
        finished_at=now_iso() if done else None,
    )
    return run, Step(done, len(rows), resolved)


def _change(item: Redecided) -> str:
    """How the answer moved: newly_labelled, relabelled, unlabelled or unchanged."""
    before = item.row.label if item.row.matched else None
    after = item.decision.label if item.decision.matched else None
    if before == after:
        return "unchanged"
    if before is None:
        return "newly_labelled"
    return "unlabelled" if after is None else "relabelled"


def _rescored(row: StoredDecision, decision: Decision) -> bool:
    """Whether the answer's score moved (its confidence, which promotion reads)."""
    old = row.candidates[0]["score"] if row.candidates else 0.0
    return abs(float(old) - decision.score) > 1e-4
