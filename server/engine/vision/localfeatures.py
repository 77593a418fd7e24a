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

FEATURE_KIND = "orb"
"""Stored feature type (the ``features.kind`` column). ORB, not SIFT: both re-rank
equally well, and ORB is several times faster to extract, which keeps the second stage
inside the per-crop latency budget (RESULTS.md, "Design choices")."""
WORK_SIDE = 320
"""Images are resized (up or down) so their longer side is this many pixels."""
RATIO = 0.8
"""Lowe's ratio test threshold."""
RANSAC_PX = 6.0
"""Reprojection error (pixels at WORK_SIDE scale) tolerated for a homography inlier."""


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoint positions (N, 2) and their binary descriptors (N, 32) uint8."""

    keypoints: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int] | None = None
    """(width, height) of the image they were found in."""

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def scale(self) -> float:
        """Keypoint coordinates per pixel of the image (see ``WORK_SIDE``)."""
        if self.size is None:
            raise ValueError("features without an image size")
        return work_scale(*self.size)


def work_scale(width: int, height: int) -> float:
    """How ``extract`` scales an image of this size before finding keypoints."""
    scale = WORK_SIDE / max(width, height)
    return scale if abs(scale - 1.0) > 0.05 else 1.0


def extract(image: np.ndarray, max_features: int = 500) -> LocalFeatures:
    """Detect keypoints on a grey, size-normalised copy of an RGB image."""
    grey = cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    # Up or down to one working size: ORB ignores a 31-pixel border and needs texture at
    # its patch scale, so a small reference is enlarged rather than left keypoint-poor.
    scale = work_scale(w, h)
    if scale != 1.0:
        grey = cv2.resize(
            grey,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
    orb = cv2.ORB.create(max_features)
    # No keypoint lies within the edge threshold of the border, and ORB's pyramid cannot
    # shrink a strip thinner than that (OpenCV raises): such a picture has no features.
    if min(grey.shape) <= 2 * orb.getEdgeThreshold():
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), (w, h))
    kps, desc = orb.detectAndCompute(grey, None)
    if desc is None or not kps:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), (w, h))
    pts = np.array([k.pt for k in kps], dtype=np.float32)
    return LocalFeatures(pts, np.asarray(desc, dtype=np.uint8), (w, h))


Geometry = tuple[int, "np.ndarray | None"]
"""Homography inliers and the homography (query keypoints -> reference keypoints)."""


def match(query: LocalFeatures, ref: LocalFeatures, min_inliers: int = 4) -> Geometry:
    """Matches between query and reference that one homography explains (0 if none),
    and that homography (None without one).

    Fewer matches passing the ratio test than ``min_inliers`` could not give that many
    inliers, so no homography is fitted for them (0, None): most shortlisted references
    of a query are not its object."""
    if len(query) < 4 or len(ref) < 4:
        return 0, None
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query.descriptors, ref.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < max(4, min_inliers):
        return 0, None
    src = query.keypoints[[m.queryIdx for m in good]].reshape(-1, 1, 2)
    dst = ref.keypoints[[m.trainIdx for m in good]].reshape(-1, 1, 2)
    # OpenCV's USAC (graph-cut RANSAC with local optimisation, deterministic): much
    # faster than classic RANSAC at about the same inlier counts (RESULTS.md).
    homography, mask = cv2.findHomography(src, dst, cv2.USAC_ACCURATE, RANSAC_PX)
    if homography is None or mask is None:
        return 0, None
    # A homography that folds the image over (negative determinant of its affine part)
    # or collapses it is not a view of a flat thing: no evidence.
    det = float(np.linalg.det(homography[:2, :2]))
    if not (0.02 < abs(det) < 50.0) or det < 0:
        return 0, None
    # Count each reference keypoint once: many query points piling onto one reference
    # point is the signature of a repetitive texture, not of the same object.
    inlier_refs = {good[i].trainIdx for i in np.flatnonzero(mask.ravel())}
    return len(inlier_refs), homography


def geometric_bonus(inliers: int, min_inliers: int, saturation: int, weight: float) -> float:
    """Score bonus for geometric evidence: 0 below ``min_inliers``, ``weight`` at
    ``saturation``, linear in between."""
    if inliers < min_inliers:
        return 0.0
    span = max(1, saturation - min_inliers)
    return weight * min(1.0, (inliers - min_inliers + 1) / span)


def outline(
    query: LocalFeatures,
    ref: LocalFeatures,
    homography: np.ndarray,
    box: tuple[int, int, int, int] | None = None,
) -> np.ndarray | None:
    """The reference's corners (those of ``box`` in it, if given) in the query image's
    pixels (4, 2), clockwise from the reference's top left, or None when the homography
    does not map the reference to a sane convex quadrilateral inside a generous margin
    around the query."""
    if query.size is None or ref.size is None:
        return None
    x0, y0, x1, y1 = box if box is not None else (0, 0, *ref.size)
    rs = ref.scale
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32) * rs
    try:
        back = np.linalg.inv(homography)
    except np.linalg.LinAlgError:
        return None
    quad = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), back).reshape(4, 2) / query.scale
    qw, qh = query.size
    if not np.isfinite(quad).all() or not cv2.isContourConvex(quad.astype(np.float32)):
        return None
    area = cv2.contourArea(quad.astype(np.float32))
    inside = (quad[:, 0] > -qw) & (quad[:, 0] < 2 * qw) & (quad[:, 1] > -qh) & (quad[:, 1] < 2 * qh)
    if not inside.all() or area < 0.01 * qw * qh:
        return None
    return quad
