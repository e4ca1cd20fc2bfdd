"""Epipolar verification of scene candidates against a query: verified inlier counts per candidate.

A room is 3-D: two wide-baseline photos of it are related by a fundamental matrix, not a homography
(which fits one plane). `geometry.match_features` does the work (RootSIFT, mutual ratio test,
MAGSAC++ fundamental matrix, the dominant plane as a fallback), so the inliers counted here are
the ones the reviewer is shown. This module decides *which* candidates are verified: the top K of a
ranking (search), or every gallery image (the upper bound of what local evidence can do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vidpipe.extract.scenes.geometry import LocalFeatures, match_features


def inliers(query: LocalFeatures, candidates: Sequence[LocalFeatures]) -> np.ndarray:
    """(len(candidates),) int64 verified inlier counts of the query against each candidate."""
    return np.array([match_features(query, c)["inliers"] for c in candidates], np.int64)


def verify_top(scores: np.ndarray, top_k: int, count: Callable[[int], int]) -> dict[int, int]:
    """{candidate index: inliers} for the `top_k` highest `scores` (stable: ties keep index order);
    `count(j)` verifies candidate j (lets a caller cache pairs)."""
    order = np.argsort(-np.asarray(scores), kind="stable")[:max(0, top_k)]
    return {int(j): int(count(int(j))) for j in order if np.isfinite(scores[j])}


def inlier_matrix(features: Sequence[LocalFeatures], pairs: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """(n, n) int64 symmetric matrix of verified inliers between images (diagonal 0); with `pairs`,
    only those (i, j) are verified (others stay 0). Matching is symmetric up to RANSAC sampling, so
    each unordered pair is verified once."""
    n = len(features)
    m = np.zeros((n, n), np.int64)
    todo = pairs if pairs is not None else [(i, j) for i in range(n) for j in range(i + 1, n)]
    for i, j in todo:
        if i != j and m[i, j] == 0:
            m[i, j] = m[j, i] = match_features(features[i], features[j])["inliers"]
    return m
