"""``identify train``: fit a projection head to the project's own references.

Two heads, both on the frozen model and both L2-normalised. The default, ``whiten``, is
linear and fitted in closed form: learnt whitening (Mikolajczyk & Matas 2007, as
Radenovic et al. 2016 use it on CNN descriptors), which whitens the scatter of each
reference's views around their mean -- what a camera changes -- and then keeps the
``dim`` directions along which the whitened class means spread most. ``supcon`` is the
seed's recipe: a 0.8M-parameter MLP (1280 -> 512 -> 256, GELU) trained with a supervised
contrastive loss on batches of 16 classes x 4 views. Whitening is the default because
on the benchmark it helped whole pictures as well as crops, where the MLP let more
unknown things through (numbers in tests/benchmarks/RESULTS.md).

Their data are synthetic camera views of every active reference (``synth.camera_view``:
perspective, light, blur, noise, JPEG, composited on procedural backgrounds -- never on
verify's photos, so verify does not grade the head on the backgrounds it learnt). A
quarter of each reference's views is held out; the head goes live only when its top-1
on those held-out views is at least the plain embedding's (and, for the MLP, only with
``force`` in a project that locates things in whole pictures). Four fold heads, each
blind to a quarter of the classes, travel in the same file for verify's unknown pass
(see ``embedders.projected``). Seeded: the same references give the same head.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.catalog.store import ReferenceRow, Store
from server.engine.catalog.vectors import VIEW_SIZE
from server.engine.errors import ImageRejected, NoReferencesError, NotIndexedError
from server.engine.project.config import Project, Projection, write_projection
from server.engine.training.registry import register_head
from server.engine.vision import backdrops, synth, threads
from server.engine.vision.embedders import Embedder, create_embedder, project_embedder
from server.engine.vision.images import flatten_alpha, load_image
from server.engine.vision.pipeline_io import bounded_map
from server.engine.workflows.common import (
    Stage,
    open_project,
    quiet,
    reference_count,
    writer_lock,
)
from server.engine.workflows.head_fitting import fit_whitening, nearest_mean, supcon
from server.engine.workflows.index import IndexSummary, build_index
from server.engine.workflows.preflight import preflight
from server.engine.workflows.reviewed_crops import (
    ReviewedCrops,
    held_out_references,
    judge_on_reviewed,
    reviewed_crops,
)
from server.engine.workflows.verify import run_verify
from server.engine.workflows.verify_report import VerifyReport

CLASSES_PER_BATCH = 16
VIEWS_PER_CLASS = 4
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
TRAIN_BACKGROUNDS = 16
"""Procedural backgrounds the training views are composited on."""
FOLDS = 4
"""Fold heads trained for verify, each leaving a quarter of the classes out."""
MIN_FOLD = 2
"""Fewest classes a fold may hold out."""


@dataclass
class TrainReport:
    """What one ``identify train`` run found."""

    classes: int
    references: int
    train_views: int
    validation_views: int
    validation_top1_plain: float
    """Top-1 on the held-out views by nearest class mean, plain model vectors."""
    validation_top1: float
    """The same with the head."""
    validation_margin_plain: float
    """Median margin (right class minus best wrong class) on the held-out views, plain."""
    validation_margin: float
    """The same with the head (on its own scale; compare top-1, not margins)."""
    adopted: bool
    """The head went live."""
    verdict: str
    """Why or why not: ``adopted``, ``worse`` (than the plain model on the held-out
    views) or ``locate`` (the project identifies whole pictures, where heads measured
    worse; ``force`` adopts anyway)."""
    folds: int
    """Fold heads trained for verify's unknown pass."""
    head_id: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    head: Any = field(default=None, repr=False)
    """The trained ``Head`` (not part of the JSON)."""
    head_file: Path | None = None
    """Where ``adopt`` wrote it."""
    real: dict[str, Any] = field(default_factory=dict)
    """Reviewed crops (``reviewed_crops``): how many trained on and held out, and the
    held-out top-1 and false-positive separation (AUC) plain and with the head; the
    verdict rests on them when enough are held out."""

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out = {k: v for k, v in self.__dict__.items() if k != "head"}
        out["head_file"] = str(self.head_file) if self.head_file else None
        return out


@dataclass
class TrainingSet:
    """Plain-model vectors of the references and their views."""

    vectors: np.ndarray
    labels: np.ndarray
    """Class index of each vector."""
    holdout: np.ndarray
    """True for the views kept out of training to validate the head."""
    classes: list[str]
    """Label of each class index."""
    references: int
    notes: list[str]


def training_vectors(
    project: Project,
    embedder: Embedder,
    store: Store,
    progress: Callable[[int], None] | None = None,
    leave_out: frozenset[int] = frozenset(),
) -> TrainingSet:
    """Plain-model vectors of every active reference (but those of ``leave_out``) and
    its synthetic views."""
    cfg = project.config.train
    rng = np.random.default_rng(cfg.seed)
    backgrounds = [backdrops.fallback_background(rng, VIEW_SIZE) for _ in range(TRAIN_BACKGROUNDS)]
    refs = [r for r in store.active_references() if r.id not in leave_out]
    classes = sorted({r.label for r in refs})
    class_of = {label: i for i, label in enumerate(classes)}
    held = max(1, cfg.views // 4)

    def render(ref: ReferenceRow) -> np.ndarray | str:
        # Seeded per reference (by content), so the worker that renders it does not matter.
        try:
            image = load_image(Path(ref.path), keep_alpha=True)
        except ImageRejected as exc:
            return f"skipped {ref.path}: {exc.message}"
        own = np.random.default_rng([cfg.seed, int(ref.content_hash[:16], 16)])
        crops = [
            flatten_alpha(image),
            *synth.camera_crops(
                image, backgrounds, own, cfg.views, size=VIEW_SIZE, strength=cfg.strength
            ),
        ]
        return embedder.embed_batch(np.stack([embedder.preprocess(c) for c in crops]))

    vectors, labels, holdout, notes = [], [], [], []
    # Two references at once on one thread each, as ``identify index`` does (``threads``).
    with threads.worker_pool(project.config.server.workers, "train") as (pool, workers):
        for ref, out in zip(refs, bounded_map(pool, render, refs, 2 * workers), strict=True):
            if isinstance(out, str):
                notes.append(out)
            else:
                vectors.append(out)
                labels += [class_of[ref.label]] * len(out)
                holdout += [False] * (len(out) - held) + [True] * held
            if progress is not None:
                progress(1)
    if not vectors:
        raise NoReferencesError("no reference could be read to train on")
    return TrainingSet(
        np.concatenate(vectors), np.array(labels), np.array(holdout), classes, len(vectors), notes
    )


def with_reviewed(data: TrainingSet, real: ReviewedCrops) -> TrainingSet:
    """The training set with the reviewed crops that are not held out added as views
    to train on (the held-out ones judge the head: ``judge_on_reviewed``)."""
    train = ~real.held_out
    if not train.any():
        return data
    return dataclasses.replace(
        data,
        vectors=np.concatenate([data.vectors, real.vectors[train]]),
        labels=np.concatenate([data.labels, real.labels[train]]),
        holdout=np.concatenate([data.holdout, np.zeros(int(train.sum()), bool)]),
    )


def fit_head(vectors: np.ndarray, labels: np.ndarray, project: Project) -> Any:
    """A head module fitted to (vectors, labels) by the project's ``train.method``."""
    cfg = project.config.train
    if cfg.method == "whiten":
        return fit_whitening(vectors, labels, cfg.dim, cfg.shrinkage)
    return fit_supcon(vectors, labels, project)


def fit_supcon(vectors: np.ndarray, labels: np.ndarray, project: Project) -> Any:
    """Train the seed's MLP head with SupCon on (vectors, labels)."""
    import torch
    import torch.nn.functional as F

    from server.engine.vision.embedders.projected import head_module

    cfg = project.config.train
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    module = head_module(vectors.shape[1], cfg.hidden, cfg.dim)
    opt = torch.optim.AdamW(module.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    x_all = torch.from_numpy(np.ascontiguousarray(vectors, np.float32))
    members = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
    members = [m for m in members if len(m)]
    per_batch = min(CLASSES_PER_BATCH, len(members))
    module.train()
    for _ in range(cfg.steps):
        picked = rng.choice(len(members), per_batch, replace=False)
        idx = np.concatenate(
            [
                rng.choice(members[c], VIEWS_PER_CLASS, replace=len(members[c]) < VIEWS_PER_CLASS)
                for c in picked
            ]
        )
        z = F.normalize(module(x_all[idx]), dim=1)
        y = torch.from_numpy(labels[idx])
        loss = supcon(z, y, cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return module.eval()


def fit_with_folds(data: TrainingSet, project: Project, base_model: str) -> Any:
    """The head on every class, plus fold heads that each never see a quarter of them
    (for verify's unknown pass; none when there are fewer than ``4 * MIN_FOLD`` classes).
    Only views outside the hold-out are trained on."""
    from server.engine.vision.embedders.projected import Head

    fit = ~data.holdout
    module = fit_head(data.vectors[fit], data.labels[fit], project)
    n = len(data.classes)
    folds = []
    if n >= FOLDS * MIN_FOLD:
        order = np.random.default_rng(project.config.train.seed).permutation(n)
        for k in range(FOLDS):
            held_out = set(order[k::FOLDS].tolist())
            keep = fit & ~np.isin(data.labels, list(held_out))
            folds.append(
                (
                    fit_head(data.vectors[keep], data.labels[keep], project),
                    frozenset(data.classes[i] for i in held_out),
                )
            )
    cfg = project.config.train
    fitted = (
        {"shrinkage": cfg.shrinkage}
        if cfg.method == "whiten"
        else {"steps": cfg.steps, "temperature": cfg.temperature}
    )
    return Head(
        module,
        base_model,
        {
            "classes": n,
            "method": cfg.method,
            "views": cfg.views,
            "strength": cfg.strength,
            **fitted,
        },
        folds,
    )


def train_projection(
    project: Project,
    embedder: Embedder,
    progress: Callable[[int], None] | None = None,
    force: bool = False,
) -> TrainReport:
    """Train a head on the project's references, validate it, and adopt it if it helps.

    The held-out views are crops, so that is all the check can vouch for. With
    ``locate`` on, the project identifies whole pictures through windows, where the
    ``supcon`` head let more unknown things through on the benchmark; then that head is
    adopted only with ``force`` (the ``whiten`` head measured better there too).

    ``embedder`` must be the plain model (``create_embedder``). Nothing is written:
    ``adopt`` puts an adopted head to work.

    Raises:
        NotIndexedError: ``identify index`` has not been run.
        NoReferencesError: fewer than two classes.
    """
    started = time.perf_counter()
    if not project.db_path.exists():
        raise NotIndexedError(
            f"project '{project.name}' has no references yet: run "
            f"`identify index --project {project.file}` first"
        )
    store = Store(project.db_path)
    try:
        if len({r.label for r in store.active_references()}) < 2:
            raise NoReferencesError("train needs at least two classes to tell apart")
        # References made of held-out reviewed crops stay out of training.
        data = training_vectors(project, embedder, store, progress, held_out_references(store))
        real = reviewed_crops(store, embedder, data.classes)
    finally:
        store.close()
    data = with_reviewed(data, real)
    vectors, labels = data.vectors, data.labels
    fit, val = ~data.holdout, data.holdout
    head = fit_with_folds(data, project, embedder.spec.model_id)
    plain_top1, plain_margin = nearest_mean(vectors[fit], labels[fit], vectors[val], labels[val])
    projected = head.project(vectors)
    top1, margin = nearest_mean(projected[fit], labels[fit], projected[val], labels[val])
    judged = judge_on_reviewed(real, vectors[fit], labels[fit], head)
    worse = judged["top1"] < judged["top1_plain"] if real.judged else top1 < plain_top1
    if real.judged and judged.get("auc") is not None:
        worse = worse or judged["auc"] < judged["auc_plain"]
    verdict = "worse" if worse else "locate" if needs_force(project) and not force else "adopted"
    adopted = verdict == "adopted"
    return TrainReport(
        classes=len(data.classes),
        references=data.references,
        train_views=int(fit.sum()),
        validation_views=int(val.sum()),
        validation_top1_plain=plain_top1,
        validation_top1=top1,
        validation_margin_plain=plain_margin,
        validation_margin=margin,
        adopted=adopted,
        verdict=verdict,
        folds=len(head.folds),
        head_id=head.id,
        seconds=time.perf_counter() - started,
        notes=data.notes,
        head=head,
        real=judged,
    )


def needs_force(project: Project) -> bool:
    """Whether a head that beat the plain model on held-out crops still needs ``force``:
    the MLP head in a project that locates things in whole pictures."""
    return project.config.train.method == "supcon" and project.config.locate.enabled


def adopt(
    project: Project,
    embedder: Embedder,
    report: TrainReport,
    progress: Callable[[int], None] | None = None,
) -> IndexSummary:
    """Put an adopted head to work: write its file, build the index in its space, and
    only then name it in the project file. An interruption before that last step leaves
    the project as it was (the index, derived data, is rebuilt by ``identify index``).

    ``embedder`` is the plain model. The thresholds must be recalibrated afterwards
    (``run_verify`` with the project reloaded), as ``identify train`` does.
    """
    from server.engine.vision.embedders.projected import ProjectedEmbedder

    head = report.head
    head_file = project.data_dir / "models" / f"{head.id}.pt"
    head.save(head_file)
    summary = build_index(project, ProjectedEmbedder(embedder, head), progress)
    write_projection(
        project.file,
        Projection(
            file=head_file,
            id=head.id,
            trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
            validation_top1=round(report.validation_top1, 4),
            validation_top1_plain=round(report.validation_top1_plain, 4),
        ),
    )
    report.head_file = head_file
    return summary


@dataclass
class TrainRun:
    """What ``identify train`` did: the training report and, when the head was adopted,
    the re-index and the re-verify that followed."""

    report: TrainReport
    before: str
    """What the project used before: a head's id, or "the plain model"."""
    summary: IndexSummary | None = None
    checked: VerifyReport | None = None
    forced: bool = False
    """The head was adopted with ``force`` (not validated on whole pictures)."""


def train_project(ref: str, force: bool = False, stage: Stage = quiet) -> TrainRun:
    """``identify train``: under the writer lock, train a head on the plain model; if it
    is adopted, re-index in its space and recalibrate (``run_verify``).

    Raises:
        ProjectConfigError, ModelUnavailableError, NotIndexedError: see ``preflight``.
        NoReferencesError: fewer than two classes.
        ConflictError: another process holds the project (a running server).
    """
    project = open_project(ref)
    preflight(project, indexed=True)
    before = project.config.projection.id if project.config.projection else "the plain model"
    with writer_lock(project, "identify train"):
        plain = create_embedder(project.config.model)
        count = reference_count(project)
        with stage("rendering views", count) as update:
            report = train_projection(project, plain, update, force=force)
        if not report.adopted:
            return TrainRun(report, before)
        with stage("re-indexing", count) as update:
            summary = adopt(project, plain, report, update)
        _register(project, report)
        project = open_project(ref)
        tested = min(count, project.config.verify.max_references)
        with stage("re-verifying", tested) as update:
            checked = run_verify(project, project_embedder(project.config), progress=update)
    return TrainRun(report, before, summary, checked, needs_force(project))


def _register(before: Project, report: TrainReport) -> None:
    """Put the adopted head in the registry with the switch to it (``before``: the
    project as it was, whose head is registered first)."""
    assert report.head_file is not None
    real = report.real
    metrics = {
        "validation_top1": round(report.validation_top1, 4),
        "validation_top1_plain": round(report.validation_top1_plain, 4),
    } | (
        {"reviewed_top1": real["top1"], "reviewed_top1_plain": real["top1_plain"]}
        if "top1" in real
        else {}
    )
    data = "synthetic views" + (" and reviewed crops" if real.get("trained_on") else "")
    training = {"method": before.config.train.method, "data": data, "reviewed": real}
    register_head(before, report.head.id, report.head_file, training, metrics)
