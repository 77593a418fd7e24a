"""The sections of a project file, one frozen dataclass each: what every key does and
its unit, and the checks a value must pass."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

TaxonomyMode = Literal["unified", "separate"]

DEFAULT_RARITY_SUFFIXES: tuple[str, ...] = (
    "c",
    "r",
    "sr",
    "ur",
    "scr",
    "utr",
    "gr",
    "hr",
    "pr",
    "pscr",
    "qcscr",
    "str",
    "sp",
    "ssp",
)
"""Rarity codes split off the end of a file stem (``Dark_Magician_ur`` -> rarity ``ur``)."""

DEFAULT_TAXONOMY = "default"
PROJECT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _empty() -> Mapping[str, ClassThreshold]:
    return MappingProxyType({})


@dataclass(frozen=True)
class NamingRules:
    """How a reference file or folder name becomes a label (the seed's rules)."""

    strip_set_code: bool = True
    """Drop a leading set code such as ``LOCH-JP001_`` from file stems."""
    rarity_suffixes: tuple[str, ...] = DEFAULT_RARITY_SUFFIXES
    """Lower-case suffixes after the last ``_`` that name a rarity, not the thing."""
    title_case: bool = True
    """Upper-case the first letter of each word (the rest of the word is kept)."""


@dataclass(frozen=True)
class ReferenceSource:
    """A folder of references: each image file directly in it is one class (its stem is
    the label) and each sub-folder is one class holding any number of images."""

    path: Path
    """The folder; relative to the project file."""
    taxonomy: str = DEFAULT_TAXONOMY
    """Which taxonomy (thresholds) the classes of this folder belong to."""
    prefix: str | None = None
    """A hierarchical label prefix, e.g. ``Cards > Yu-Gi-Oh`` gives
    ``Cards > Yu-Gi-Oh > Dark Magician``."""


@dataclass(frozen=True)
class IndexConfig:
    """The USearch vector index."""

    dtype: Literal["f32", "f16", "bf16", "i8"] = "f16"
    """Scalar type of stored vectors: f16 halves memory with no measurable recall loss."""
    connectivity: int = 16
    """HNSW graph degree (USearch ``connectivity``)."""
    expansion_add: int = 128
    """HNSW beam width while inserting."""
    expansion_search: int = 64
    """HNSW beam width while searching."""
    top_k: int = 20
    """Neighbours fetched per query before per-class aggregation."""
    views: int = 6
    """Synthetic camera views of each reference (perspective, light, blur, background)
    averaged with it into its vector; 0 embeds the plain image only. Costs one extra
    forward pass per view at index time, none at query time."""

    def __post_init__(self) -> None:
        if not 0 <= self.views <= 64:
            raise ValueError("index.views must be between 0 and 64")
        if self.top_k < 1:
            raise ValueError("index.top_k must be at least 1")


@dataclass(frozen=True)
class RerankConfig:
    """Second stage: local features matched to the shortlisted references with a
    RANSAC homography check, and every ranked reference's colour layout compared, for
    things a global embedding cannot tell apart."""

    enabled: bool = True
    """Run the second stage at all."""
    shortlist: int = 5
    """Classes from the global ranking whose keypoints are matched."""
    max_features: int = 500
    """ORB keypoints kept per image."""
    min_inliers: int = 8
    """Homography inliers below this count as no geometric evidence."""
    saturation: int = 30
    """Inlier count at which the geometric bonus is full."""
    weight: float = 0.35
    """Bonus added to the cosine score at full geometric evidence."""
    appearance: float = 0.3
    """Weight of the colour-layout comparison (see ``appearance``): the score changes by
    this much times (similarity - ``appearance_centre``); 0 turns it off."""
    appearance_centre: float = 0.5
    """Layout similarity that neither adds nor takes away: about what an unrelated
    thing's layout scores (the median of wrong candidates on the benchmark's crops)."""
    aligned: float = 0.5
    """Weight of the aligned comparison of flat things (see ``vision.aligned``): the
    score of a flat reference among the ``aligned_shortlist`` rises by this much times
    how far the aligned correlation passes ``aligned_centre``; 0 turns it off."""
    aligned_centre: float = 0.7
    """Aligned correlation from which the bonus starts: at 0.7 the two pictures share
    about half their variance (0.7 squared), more alike than not."""
    aligned_shortlist: int = 20
    """Classes from the global ranking compared aligned (when their reference is flat;
    20 is every class ``index.top_k`` returns by default): more than are matched by
    keypoints, since a comparison as warped costs microseconds and the global
    embedding ranks near-identical things poorly."""
    aligned_refined: int = 3
    """Of those, the ones whose correlation as warped is best are aligned to the pixel
    (ECC, about 2.6 ms each on 2 CPU cores) and compared again; 0 compares all as
    warped only."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.appearance <= 2.0:
            raise ValueError("rerank.appearance must be between 0 and 2")
        if not 0.0 <= self.appearance_centre <= 1.0:
            raise ValueError("rerank.appearance_centre must be between 0 and 1")
        if not 0.0 <= self.aligned <= 2.0:
            raise ValueError("rerank.aligned must be between 0 and 2")
        if not -1.0 <= self.aligned_centre < 1.0:
            raise ValueError("rerank.aligned_centre must be between -1 and 1")
        if not 0 <= self.aligned_shortlist <= 1000:
            raise ValueError("rerank.aligned_shortlist must be between 0 and 1000")
        if not 0 <= self.aligned_refined <= 1000:
            raise ValueError("rerank.aligned_refined must be between 0 and 1000")


@dataclass(frozen=True)
class LocateConfig:
    """Finding the object in a whole picture (a camera frame, a photo) when no detector
    gave its box: windows of one feature map are searched, the best few are identified
    as crops next to the whole picture, and the best answer gives the box."""

    enabled: bool = True
    """Locate at all; off, a whole picture is identified as one crop."""
    candidates: int = 3
    """Windows identified as crops besides the whole picture (each costs one forward
    pass and a second-stage check)."""
    layout_search: bool = True
    """Also search the picture for the box whose colour layout best matches the
    references the windows look most like (a box of the reference's shape, not a grid
    cell), and identify that box too: one more forward pass."""

    def __post_init__(self) -> None:
        if not 0 <= self.candidates <= 16:
            raise ValueError("locate.candidates must be between 0 and 16")


@dataclass(frozen=True)
class TrainConfig:
    """How ``identify train`` fits a projection head on the frozen embedder."""

    method: Literal["whiten", "supcon"] = "whiten"
    """``whiten``: a linear head in closed form, learnt whitening (within-class scatter of
    the views whitened, then the directions that keep the classes apart; seconds, no
    randomness beyond the views). ``supcon``: the seed's trained MLP (``hidden``,
    ``steps``, ``temperature``)."""
    views: int = 16
    """Synthetic camera views rendered of each reference to train on (one forward pass
    each); a quarter of them (at least one) is held out to validate the head."""
    strength: float = 1.0
    """Harshness of those views (0 clean, 1 typical, 1.5 harsh)."""
    steps: int = 1000
    """``supcon``: optimiser steps, each on 16 classes x 4 views (the seed's batch)."""
    hidden: int = 512
    """``supcon``: width of the head's hidden layer."""
    dim: int = 256
    """Dimension of the head's output: the vectors the index then holds (at most the
    model's own; a ``whiten`` head at most the number of directions its views span)."""
    shrinkage: float = 0.3
    """``whiten``: share of the mean within-class variance added to every direction's
    before whitening, so directions the views barely vary in are not blown up."""
    temperature: float = 0.1
    """``supcon``: the loss's temperature."""
    seed: int = 0
    """Random seed: the same references and seed give the same head."""

    def __post_init__(self) -> None:
        if not 2 <= self.views <= 256:
            raise ValueError("train.views must be between 2 and 256")
        if self.steps < 1:
            raise ValueError("train.steps must be at least 1")
        if self.hidden < 1 or self.dim < 2:
            raise ValueError("train.hidden must be at least 1 and train.dim at least 2")
        if self.temperature <= 0:
            raise ValueError("train.temperature must be positive")
        if not 0 < self.shrinkage <= 10:
            raise ValueError("train.shrinkage must be in (0, 10]")


@dataclass(frozen=True)
class Projection:
    """The projection head in use; written by ``identify train``. Delete the block (then
    run ``identify index``) to go back to the plain embedding."""

    file: Path
    """The head's weights; relative to the project file."""
    id: str
    """Content id of the head, recorded in the index's metadata."""
    trained_at: str = ""
    """ISO time of training."""
    validation_top1: float | None = None
    """Top-1 on held-out synthetic views with the head."""
    validation_top1_plain: float | None = None
    """Top-1 on the same views with the plain embedding."""


@dataclass(frozen=True)
class ClassThreshold:
    """An override of the decision thresholds for one class."""

    threshold: float | None = None
    """Minimum score to accept; None inherits from the taxonomy."""
    margin: float | None = None
    """Minimum score gap to the best other class; None inherits."""


@dataclass(frozen=True)
class Taxonomy:
    """A named group of classes sharing decision thresholds."""

    name: str
    """Referred to by ``references[].taxonomy``."""
    threshold: float | None = None
    """Minimum score to accept; None uses the value ``identify verify`` calibrated."""
    margin: float | None = None
    """Minimum gap to the best other class; None uses the calibrated value."""
    classes: Mapping[str, ClassThreshold] = field(default_factory=_empty)
    """Per-class overrides, keyed by label."""
    mode: TaxonomyMode = "unified"
    """``unified``: a reviewer's label becomes a reference at once. ``separate``: the
    references are a curated set; reviewers' labels and accepted answers are stored
    (with their pictures), not made references, until promoted."""
    promote_confidence: float = 0.85
    """``separate``: accepted answers scoring at least this are promoted by default
    (reviewers' labels always are)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.promote_confidence <= 2.0:
            raise ValueError(f"taxonomy {self.name}: promote_confidence must be 0 to 2")


@dataclass(frozen=True)
class VerifyConfig:
    """How ``identify verify`` builds its synthetic camera-like queries."""

    queries_per_reference: int = 6
    """Synthetic views made of each reference."""
    max_references: int = 500
    """Larger sets are self-tested on a seeded sample of this many references (the
    index still holds them all), so verify stays minutes, not hours."""
    backgrounds: Path | None = None
    """Folder of background photos; None uses the photos shipped with identify."""
    strength: float = 1.0
    """Harshness of the synthetic camera (0 clean, 1 typical, 1.5 harsh)."""
    seed: int = 0
    """Random seed: the same set and seed give the same report."""
    expected_unknown_share: float = 0.3
    """Share of live queries expected to show things not in the index; weights the
    known and unknown passes when predicting open-set accuracy."""
    picture_queries: int = 2
    """Whole camera frames made of each reference, located and identified as pictures
    are, to calibrate the thresholds for whole pictures apart from crops (a picture
    answers with the best of several regions, so unknown things score higher in it);
    0 calibrates on crops only. Used only with ``locate`` on."""

    def __post_init__(self) -> None:
        if not 0 <= self.picture_queries <= 64:
            raise ValueError("verify.picture_queries must be between 0 and 64")
        if not 0.0 <= self.expected_unknown_share <= 1.0:
            raise ValueError("verify.expected_unknown_share must be between 0 and 1")
        if self.queries_per_reference < 1:
            raise ValueError("verify.queries_per_reference must be at least 1")
        if self.max_references < 2:
            raise ValueError("verify.max_references must be at least 2")


@dataclass(frozen=True)
class ReviewConfig:
    """Which misses enter the review queue, and how live video is kept from flooding it."""

    min_crop_side: int = 48
    """Crops whose shorter side is below this many pixels are not queued (counted)."""
    min_sharpness: float = 8.0
    """Variance of the Laplacian (on the crop scaled down to 256 px) below which a crop
    is too blurred to review; 0 turns the check off. Sharp camera photos measure 20 to
    several hundred; a 3x3 Gaussian blur of one brings it to about 10."""
    min_pixel_correlation: float = 0.3
    """Neighbouring pixels of a picture of a thing are correlated (0.59 or more on 1,270
    real images, about 0.95 typically); below this a crop is noise, not worth a person's
    time, and as a reference it would attract every noisy frame. 0 turns it off."""
    track_similarity: float = 0.85
    """Cosine similarity between consecutive frames' embeddings above which a whole-frame
    object is the same track (boxes use ``track_iou``)."""
    track_iou: float = 0.3
    """Box overlap above which a detected object continues a track."""
    track_timeout_s: float = 2.0
    """A track not seen for this many seconds has left; its next appearance is new."""
    min_track_frames: int = 3
    """Frames a live track is smoothed over before a miss is queued."""
    smoothing: float = 0.5
    """Weight of the newest frame in a track's running per-class scores (1 = no
    smoothing)."""
    keep_days: float | None = 30.0
    """Days the picture of an item a person decided on (or skipped) is kept; then the
    file is deleted and the row (label, scores) stays for stats and thresholds. A label
    already made its own copy a reference. Pending items are always kept; null keeps
    decided ones forever too."""
    audit_share: float = 0.02
    """Share of accepted answers queued too (reason ``audit``), so that wrong accepts
    are found and counted; 0 turns it off."""
    audit_margin: float | None = None
    """Accepted answers whose margin is below this are queued too (``low_confidence``);
    null: twice the margin threshold they were accepted at; 0 turns it off."""
    reapply_resolves: bool = True
    """A re-application resolves a pending miss that now matches as ``auto`` (its new
    answer accepted without a person); false leaves it in the queue."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.audit_share <= 1.0:
            raise ValueError("review.audit_share must be between 0 and 1")
        if self.audit_margin is not None and not 0.0 <= self.audit_margin <= 1.0:
            raise ValueError("review.audit_margin must be between 0 and 1 (or null)")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError("review.smoothing must be in (0, 1]")
        if self.min_track_frames < 1:
            raise ValueError("review.min_track_frames must be at least 1")
        if self.keep_days is not None and self.keep_days < 0:
            raise ValueError("review.keep_days must be 0 or more (or null: forever)")


@dataclass(frozen=True)
class CameraConfig:
    """A server-side camera: a device number, a video file (looped) or a stream URL."""

    source: str
    """``0`` for the first device, a file path (relative to the project file) or a URL."""
    name: str | None = None
    """Shown as the source of its identifications; defaults to the source."""
    fps: float = 5.0
    """Frames per second identified at most (the rest are dropped, not queued)."""


@dataclass(frozen=True)
class ServerConfig:
    """Defaults for ``identify serve`` (command-line options override them)."""

    host: str = "127.0.0.1"
    """Interface to bind; anything but loopback requires a token."""
    port: int = 8765
    """TCP port."""
    cameras: tuple[CameraConfig, ...] = ()
    """Server-side cameras opened at start."""
    workers: int | None = None
    """Images prepared at once (decode, embed, local features), each on its share of the
    cores; None: one per core, at most 4."""
    allow_hosts: tuple[str, ...] = ()
    """Host names, besides the bind address and the loopback names, that requests may be
    addressed to (a name that points at this machine); others are refused (403)."""

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError("server.workers must be at least 1")
