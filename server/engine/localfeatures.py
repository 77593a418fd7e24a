"""Second stage: local features and a homography check against shortlisted references.

A global embedding says "looks like a playing card"; it cannot tell the seven of hearts
from the eight. Local keypoints matched to a reference, with a RANSAC homography that
must explain them, see exactly that detail and geometry. Reference features are
computed once at index time and stored; per query, features are extracted once and
matched only to the few references the global ranking shortlisted.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FEATURE_KIND = "sift"
"""Stored feature type (the ``features.kind`` column)."""
WORK_SIDE = 400
"""Images are resized so their longer side is this many pixels before detection."""
RATIO = 0.8
"""Lowe's ratio test threshold."""
RANSAC_PX = 6.0
"""Reprojection error (pixels at WORK_SIDE scale) tolerated for a homography inlier."""


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoint positions (N, 2) and their descriptors (N, 128) uint8."""

    keypoints: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


def _detector(max_features: int) -> cv2.SIFT:
    # nOctaveLayers, contrastThreshold, edgeThreshold, sigma as OpenCV defaults; uint8
    # descriptors are 4x smaller to store and match as well as float ones.
    return cv2.SIFT_create(max_features, 3, 0.04, 10.0, 1.6, cv2.CV_8U)


def extract(image: np.ndarray, max_features: int = 400) -> LocalFeatures:
    """Detect keypoints on a grey, size-normalised copy of an RGB image."""
    grey = cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    scale = WORK_SIDE / max(h, w)
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA)
    kps, desc = _detector(max_features).detectAndCompute(grey, None)
    if desc is None or not kps:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8))
    pts = np.array([k.pt for k in kps], dtype=np.float32)
    return LocalFeatures(pts, np.asarray(desc, dtype=np.uint8))


def count_inliers(query: LocalFeatures, ref: LocalFeatures) -> int:
    """Matches between query and reference that one homography explains (0 if none)."""
    if len(query) < 4 or len(ref) < 4:
        return 0
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    pairs = matcher.knnMatch(query.descriptors.astype(np.float32),
                             ref.descriptors.astype(np.float32), k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < 4:
        return 0
    src = query.keypoints[[m.queryIdx for m in good]].reshape(-1, 1, 2)
    dst = ref.keypoints[[m.trainIdx for m in good]].reshape(-1, 1, 2)
    homography, mask = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PX)
    if homography is None or mask is None:
        return 0
    # A homography that folds the image over (negative determinant of its affine part)
    # or collapses it is not a view of a flat thing: no evidence.
    det = float(np.linalg.det(homography[:2, :2]))
    if not (0.02 < abs(det) < 50.0) or det < 0:
        return 0
    # Count each reference keypoint once: many query points piling onto one reference
    # point is the signature of a repetitive texture, not of the same object.
    inlier_refs = {good[i].trainIdx for i in np.flatnonzero(mask.ravel())}
    return len(inlier_refs)


def geometric_bonus(inliers: int, min_inliers: int, saturation: int, weight: float) -> float:
    """Score bonus for geometric evidence: 0 below ``min_inliers``, ``weight`` at
    ``saturation``, linear in between."""
    if inliers < min_inliers:
        return 0.0
    span = max(1, saturation - min_inliers)
    return weight * min(1.0, (inliers - min_inliers + 1) / span)
