"""``identify evaluate`` for identification: two head (or embedder) versions side by side
on reviewed crops neither was trained on.

The crops are the reviewed objects (confirmed and corrected ones with their true
classes; false positives, things of no interest) of the pictures ``identify train``
holds out: the newest quarter, split by picture and live track, so a head ``train`` made
never saw them. With ``since``, every one reviewed from then on. Each version is judged
as it would run live, in a copy of the project (``judging_copy``) whose index is built
in the version's space without the references made of these crops, at the thresholds
``identify verify``'s self-test calibrates there (written nowhere), each crop identified
as a detector's crop is. Thresholds set by hand (a taxonomy's or a class's in the
project file, or through the server) were set for the live space, not a candidate's, so
both versions are judged at their own calibration alone. Nothing of the project
changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from server.engine.catalog.store import Store, TrainingRow, VersionRow
from server.engine.decide.decision import Decision
from server.engine.decide.identifier import Identifier
from server.engine.errors import IdentifyError
from server.engine.project.config import Calibration, Project, ProjectConfig
from server.engine.training.evaluate import Answer, IdScored, score_answers
from server.engine.training.registry import Identity, Kind
from server.engine.vision.embedders import project_embedder
from server.engine.workflows.common import Stage, quiet, reference_count
from server.engine.workflows.judging_copy import judging_copy
from server.engine.workflows.reviewed_crops import held_out_groups, picture_key, reviewed_crop
from server.engine.workflows.verify import run_verify
from server.engine.workflows.verify_report import VerifyReport
from server.engine.workflows.versions import checked_file, space_config

TYPES = ("confirmed", "corrected", "false_positive")
BATCH = 32


def judged_rows(store: Store, since: str | None) -> list[TrainingRow]:
    """The reviewed objects to judge on (see the module docstring)."""
    rows = store.training_rows(TYPES, since=since)
    if since is not None:
        return rows
    held = held_out_groups(rows)
    return [r for r in rows if picture_key(r) in held]


def side_config(
    project: Project, store: Store, kind: Kind, version: VersionRow | Identity, live: bool
) -> ProjectConfig:
    """The project's configuration with ``version`` in place (``live``: as it is)."""
    if live or isinstance(version, Identity):
        return project.config
    return space_config(project, store, kind, version, checked_file(project, version))


def score_space(
    project: Project,
    config: ProjectConfig,
    rows: Sequence[TrainingRow],
    crops: Sequence[np.ndarray],
    name: str,
    stage: Stage = quiet,
) -> IdScored:
    """One version's numbers on the crops of ``rows`` (see the module docstring)."""
    leave_out = {r.reference_id for r in rows if r.reference_id is not None}
    with judging_copy(project, config, leave_out, stage, f"indexing for {name}") as copy:
        store = Store(copy.db_path)
        try:
            for scope, key, _, _ in store.threshold_overrides():
                store.set_threshold_override(scope, key, None, None)
        finally:
            store.close()
        embedder = project_embedder(config)
        tested = min(reference_count(copy), config.verify.max_references)
        with stage(f"calibrating {name}", tested) as update:
            checked = run_verify(copy, embedder, write=False, progress=update)
        judged = dataclasses.replace(copy, config=calibrated_only(config, checked))
        ident = Identifier.open(judged, embedder)
        try:
            known = set(ident.labels.values())
            decisions: list[Decision] = []
            with stage(f"identifying with {name}", len(crops)) as update:
                for i in range(0, len(crops), BATCH):
                    chunk = crops[i : i + BATCH]
                    decisions.extend(ident.decide(ev) for ev in ident.evidence(chunk))
                    update(len(chunk))
        finally:
            ident.close()
    answers = [
        Answer(
            truth=row.label if row.type != "false_positive" and row.label in known else None,
            top1=d.candidates[0].label if d.candidates else None,
            label=d.label,
        )
        for row, d in zip(rows, decisions, strict=True)
    ]
    return score_answers(answers, checked.threshold, checked.margin_threshold)


def calibrated_only(config: ProjectConfig, checked: VerifyReport) -> ProjectConfig:
    """``config`` deciding at ``checked``'s calibration, with no threshold set by hand."""
    calibration = Calibration(checked.threshold, checked.margin_threshold, checked.model)
    taxonomies = tuple(
        dataclasses.replace(t, threshold=None, margin=None, classes={}) for t in config.taxonomies
    )
    return dataclasses.replace(config, calibration=calibration, taxonomies=taxonomies)


def readable(rows: Sequence[TrainingRow]) -> tuple[list[TrainingRow], list[np.ndarray], int]:
    """The rows whose crop can be read, their crops, and how many could not.

    Raises:
        IdentifyError: none to judge on.
    """
    kept, crops = [], []
    for row in rows:
        crop = reviewed_crop(row)
        if crop is not None:
            kept.append(row)
            crops.append(crop)
    if not kept:
        raise IdentifyError("no reviewed crop to evaluate on: review more first")
    return kept, crops, len(rows) - len(kept)
