"""Second stage: ORB keypoints of a query matched to a reference under one homography."""

from __future__ import annotations

import cv2
import numpy as np

from server.engine.vision.images import flatten_alpha, load_image
from server.engine.vision.localfeatures import extract, match
from tests.conftest import DEMO_REFS


def _warped(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image under a mild perspective warp, and that warp (image -> warped)."""
    h, w = image.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[0.05 * w, 0.1 * h], [0.9 * w, 0], [w, 0.95 * h], [0.1 * w, h]])
    warp = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(image, warp, (w, h), borderValue=(255, 255, 255)), warp


def test_a_warped_copy_matches_its_reference_under_the_warp() -> None:
    ref_image = flatten_alpha(load_image(DEMO_REFS / "pineapple.png", keep_alpha=True))
    query_image, warp = _warped(ref_image)
    ref, query = extract(ref_image), extract(query_image)
    inliers, homography = match(query, ref)
    assert inliers >= 30 and homography is not None
    # The homography maps query keypoints back onto the reference: it undoes the warp
    # (both images are the same size, so both work scales are the same).
    h, w = ref_image.shape[:2]
    corners = np.float32([[0.3 * w, 0.3 * h], [0.7 * w, 0.6 * h]]).reshape(-1, 1, 2)
    s = query.scale
    there = cv2.perspectiveTransform(corners, warp) * s
    back = cv2.perspectiveTransform(there, homography) / s
    np.testing.assert_allclose(back, corners, atol=4.0)
    other = extract(flatten_alpha(load_image(DEMO_REFS / "banana.png", keep_alpha=True)))
    assert match(query, other)[0] < 8


def test_too_few_tentative_matches_fit_no_homography() -> None:
    """Below ``min_inliers`` ratio-test matches the answer is (0, None) without a fit:
    no homography could have had that many inliers."""
    ref_image = flatten_alpha(load_image(DEMO_REFS / "pineapple.png", keep_alpha=True))
    ref, query = extract(ref_image), extract(_warped(ref_image)[0])
    inliers, _ = match(query, ref)
    assert match(query, ref, min_inliers=inliers)[0] == inliers
    assert match(query, ref, min_inliers=len(query) + 1) == (0, None)
