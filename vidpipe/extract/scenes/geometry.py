"""Geometric verification of scene candidates (RootSIFT, mutual ratio test, MAGSAC++) and score fusion.

A reviewer must see *why* two rooms match, so a verification keeps the inlier point pairs (the same
bedspread pattern, headboard corner, picture frame in both photos) and, where one plane carries
enough of them, the homography of that plane for an overlay. Time is bounded: images are reduced to
at most MAX_SIDE pixels and at most MAX_KEYPOINTS SIFT points each; people are masked out of the
keypoints like they are out of the global vector (the same victim in two rooms must not match).

Geometry is evidence added to the global score, not a ranking of its own: on ScanNet wide-baseline
indoor pairs, re-ranking the top 5 by inliers alone lowered recall@1 from 21/30 to 8-9/30 (issue
measurement), because different rooms reached inlier counts like the same room's. `combine` adds a
bonus only above INLIER_FLOOR, well over what different places reach here, and never lowers a score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidpipe.extract.faces.base import as_rgb_uint8
from vidpipe.extract.scenes.masking import mask_array

Box = tuple[float, float, float, float]

# Longest side for feature extraction: SIFT on a 1024 px image took ~0.3 s on one busy core; larger adds time, not rooms.
MAX_SIDE = 1024
# SIFT points kept per image (strongest first): bounds matching time (O(n^2) descriptor distances).
MAX_KEYPOINTS = 2000
# Lowe's ratio test: 0.8 rejects 90 % of false matches and 5 % of correct ones (Lowe, IJCV 2004, fig. 11).
RATIO = 0.8
# Epipolar (fundamental-matrix) model: rooms are 3-D, a homography only fits one plane. MAGSAC++ with
# a 2 px threshold separated same from different places best among {H, F} x {RANSAC, MAGSAC} x {1,2,3,5 px}
# (bench.eval_scenes, 435 pairs: different places <= 9 inliers).
RANSAC_PX = 2.0
RANSAC_CONFIDENCE = 0.999
RANSAC_MAX_ITERS = 2000
RANSAC_SEED = 0
MIN_MATCHES = 8  # the 8-point algorithm's minimum
# Dominant plane (homography, plain RANSAC): at least this many matches within PLANE_PX extraction
# pixels. Different places reached at most 5 plane inliers with RootSIFT (bench.eval_scenes).
MIN_PLANE_INLIERS = 12
PLANE_PX = 5.0
# Matched point pairs returned for display.
MAX_RETURNED_MATCHES = 200
METHOD = f"rootsift{MAX_KEYPOINTS}@{MAX_SIDE}+ratio{RATIO}+mutual+max(magsac-F{RANSAC_PX:g}px,ransac-H{PLANE_PX:g}px)"

# Fusion constants, measured with bench.eval_scenes on ../shared/data/scenes + sample_media/rooms
# (30 images, 435 pairs, 2026-11-29). Different places: at most 9 inliers (8 is the 8-point minimum:
# any 8 tentative matches "fit"), also with a person pasted into the query. Same place: 0-347, median 10.
# INLIER_FLOOR = 15 (1.6x the worst negative): floors 10-15 gave the same recall, 20 lost the gain.
INLIER_FLOOR = 15
# Evidence saturates here (log scale between floor and saturation); 40-100 measured the same.
INLIER_SATURATION = 60
# The bonus at saturation. Different places reach a global cosine of 0.83 (two hotel rooms), the same
# place can score 0.49, so 0.5 lifts a verified candidate above every unverified one; 0.25-1.0
# measured the same recall.
GEOMETRY_WEIGHT = 0.5
# Candidates verified per query (from the global ranking): 5 and 10 gave the same recall; 10 leaves
# room for a true match the global score under-ranked.
RERANK_TOP_K = 10


@dataclass
class LocalFeatures:
    """SIFT keypoints of one image: (n, 2) float32 points in original-image pixels, (n, 128) descriptors."""

    points: np.ndarray
    descriptors: np.ndarray
    scale: float  # extraction pixels per original pixel

    def __len__(self) -> int:
        return len(self.points)


def _grey_reduced(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    import cv2

    image = as_rgb_uint8(image)  # grey and RGBA accepted, anything else refused
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if s < 1.0:
        grey = cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return grey, s


def extract_features(image: np.ndarray, mask: Sequence[Box] | None = None, *, max_side: int = MAX_SIDE,
                     max_keypoints: int = MAX_KEYPOINTS) -> LocalFeatures:
    """SIFT points of an RGB (grey, RGBA) uint8 image, none inside the `mask` boxes (the people)."""
    import cv2

    grey, s = _grey_reduced(image, max_side)
    keep = None
    if mask:
        keep = (~mask_array([tuple(v * s for v in b) for b in mask], grey.shape[1], grey.shape[0])).astype(np.uint8) * 255
    sift = cv2.SIFT_create(nfeatures=max_keypoints)
    kps, desc = sift.detectAndCompute(grey, keep)
    if desc is None or not kps:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), s)
    pts = np.array([kp.pt for kp in kps], np.float32) / s
    return LocalFeatures(pts, desc.astype(np.float32), s)


def _rootsift(desc: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelović & Zisserman, CVPR 2012): L1-normalise, square-root; L2 on it = Hellinger."""
    d = desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-12)
    return np.sqrt(d).astype(np.float32)


def _two_nearest(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a distance matrix: (nearest column, nearest / second-nearest distance ratio)."""
    two = np.argpartition(d, 1, axis=1)[:, :2]
    dist = np.take_along_axis(d, two, axis=1)
    swap = dist[:, 1] < dist[:, 0]
    first = np.where(swap, two[:, 1], two[:, 0])
    lo, hi = np.minimum(dist[:, 0], dist[:, 1]), np.maximum(dist[:, 0], dist[:, 1])
    return first, lo / np.maximum(hi, 1e-12)


def mutual_ratio_matches(da: np.ndarray, db: np.ndarray, ratio: float = RATIO) -> np.ndarray:
    """(m, 2) index pairs that pass the ratio test in both directions and pick each other.

    Mutual matching removes the many-to-one matches that repeated patterns (wallpaper, carpet)
    produce; one (n_a x n_b) distance matrix serves both directions.
    """
    if len(da) < 2 or len(db) < 2:
        return np.zeros((0, 2), np.int64)
    sq = (da * da).sum(1)[:, None] + (db * db).sum(1)[None, :] - 2.0 * (da @ db.T)
    d = np.sqrt(np.maximum(sq, 0.0))
    nn_ab, r_ab = _two_nearest(d)
    nn_ba, r_ba = _two_nearest(d.T)
    a = np.flatnonzero(r_ab < ratio)
    b = nn_ab[a]
    keep = (nn_ba[b] == a) & (r_ba[b] < ratio)
    return np.stack([a[keep], b[keep]], axis=1).astype(np.int64)


def _fit(kind: str, xa: np.ndarray, xb: np.ndarray, px: float) -> tuple[np.ndarray | None, np.ndarray]:
    """(model, inlier indices) of a fundamental matrix ("F", MAGSAC++) or homography ("H", RANSAC)."""
    import cv2

    cv2.setRNGSeed(RANSAC_SEED)  # same answer for the same pair, every run
    try:
        if kind == "F":
            M, inl = cv2.findFundamentalMat(xa, xb, cv2.USAC_MAGSAC, px, RANSAC_CONFIDENCE, RANSAC_MAX_ITERS)
        else:
            M, inl = cv2.findHomography(xa, xb, cv2.RANSAC, px, maxIters=RANSAC_MAX_ITERS, confidence=RANSAC_CONFIDENCE)
    except cv2.error:  # USAC asserts on degenerate sets, e.g. every match on one plane
        return None, np.zeros(0, np.int64)
    if M is None or inl is None or M.shape != (3, 3):
        return None, np.zeros(0, np.int64)
    return M, np.flatnonzero(inl.ravel().astype(bool))


def match_features(fa: LocalFeatures, fb: LocalFeatures, *, ratio: float = RATIO,
                   ransac_px: float = RANSAC_PX) -> dict:
    """Verify two feature sets.

    Returns {inliers, matches: up to MAX_RETURNED_MATCHES inlier point pairs ((xa, ya), (xb, yb)) in
    original pixels, homography: 3x3 list a -> b (original pixels) of the dominant plane (wall, bed)
    when at least MIN_PLANE_INLIERS matches fit one, else None, plane_inliers, epipolar_inliers,
    tentative: mutual ratio-test matches, method}. `inliers` is the larger of the epipolar
    (fundamental matrix: any 3-D room) and the plane count (a scene that is one plane, such as a
    wall or a poster, makes the fundamental matrix degenerate).
    """
    result = {"inliers": 0, "matches": [], "homography": None, "plane_inliers": 0, "epipolar_inliers": 0,
              "tentative": 0, "method": METHOD}
    pairs = mutual_ratio_matches(_rootsift(fa.descriptors), _rootsift(fb.descriptors), ratio)
    result["tentative"] = int(len(pairs))
    if len(pairs) < MIN_MATCHES:
        return result
    pa, pb = fa.points[pairs[:, 0]], fb.points[pairs[:, 1]]
    # Fit in extraction pixels, so that the thresholds mean the same at any original size.
    xa, xb = (pa * fa.scale).astype(np.float64), (pb * fb.scale).astype(np.float64)
    _, f_idx = _fit("F", xa, xb, ransac_px)
    H, h_idx = _fit("H", xa, xb, PLANE_PX)
    if len(f_idx) < MIN_MATCHES:
        f_idx = f_idx[:0]
    if len(h_idx) < MIN_PLANE_INLIERS:
        H, h_idx = None, h_idx[:0]
    result["epipolar_inliers"], result["plane_inliers"] = int(len(f_idx)), int(len(h_idx))
    idx = f_idx if len(f_idx) >= len(h_idx) else h_idx
    result["inliers"] = int(len(idx))
    result["matches"] = [((round(float(pa[i, 0]), 1), round(float(pa[i, 1]), 1)),
                          (round(float(pb[i, 0]), 1), round(float(pb[i, 1]), 1))) for i in idx[:MAX_RETURNED_MATCHES]]
    if H is not None and abs(H[2, 2]) > 1e-12:
        # Back to original pixels: H_orig = S_b^-1 . H . S_a.
        H = np.diag([1 / fb.scale, 1 / fb.scale, 1.0]) @ H @ np.diag([fa.scale, fa.scale, 1.0])
        result["homography"] = (H / H[2, 2]).tolist()
    return result


def verify_pair(img_a: np.ndarray, img_b: np.ndarray, mask_a: Sequence[Box] | None = None,
                mask_b: Sequence[Box] | None = None) -> dict:
    """Geometric verification of two RGB uint8 images (people boxes excluded); see `match_features`.

    For many candidates of one query, call `extract_features` once for the query and
    `match_features` per candidate instead.
    """
    return match_features(extract_features(img_a, mask_a), extract_features(img_b, mask_b))


def geometry_evidence(inliers: int) -> float:
    """0 at or below INLIER_FLOOR, 1 at INLIER_SATURATION and above, log-linear between
    (inlier counts of true matches spread over two orders of magnitude)."""
    if inliers <= INLIER_FLOOR:
        return 0.0
    e = np.log(inliers / INLIER_FLOOR) / np.log(INLIER_SATURATION / INLIER_FLOOR)
    return float(min(1.0, e))


def combine(global_score: float, inliers: int) -> float:
    """Fused score = global cosine + GEOMETRY_WEIGHT x geometry_evidence(inliers).

    Additive and one-sided: weak geometry (at chance level) leaves the global ranking alone, so
    repeated textures cannot push a wrong room up, while strong geometry lifts a candidate the
    global descriptor under-ranked. Comparable with a threshold on the same scale.
    """
    return float(global_score) + GEOMETRY_WEIGHT * geometry_evidence(int(inliers))


def fused_order(global_scores: Sequence[float], inliers: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(order, fused scores) of verified candidates: `combine` per candidate, best first; ties keep
    the global order (a stable sort of candidates given in global order)."""
    fused = np.array([combine(s, n) for s, n in zip(global_scores, inliers)], np.float64)
    return np.argsort(-fused, kind="stable"), fused
