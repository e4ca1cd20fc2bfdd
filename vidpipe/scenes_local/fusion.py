"""Fusion of the global room score with local evidence (aggregated-local similarity, inliers).

Scores stay on one scale that a threshold can be calibrated on: the fused score is the global
cosine plus weighted local terms, so a candidate with no local support keeps its global score
(one-sided, like `geometry.combine`). Rank fusion (reciprocal ranks) is offered for ordering only;
its values depend on the gallery size and carry no threshold.
"""

from __future__ import annotations

import numpy as np

from vidpipe.extract.scenes.geometry import geometry_evidence

# Reciprocal-rank constant (Cormack, Clarke & Büttcher, SIGIR 2009: k = 60 across TREC runs).
RRF_K = 60


def score_fusion(global_scores: np.ndarray, local_scores: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * global + weight * local, elementwise (both cosines / similarities in [-1, 1])."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    return (1.0 - weight) * np.asarray(global_scores, np.float64) + weight * np.asarray(local_scores, np.float64)


def rank_fusion(*score_rows: np.ndarray, k: int = RRF_K) -> np.ndarray:
    """Reciprocal rank fusion of several score vectors over the same candidates: sum of 1 / (k + rank),
    rank 1 = best (stable); -inf scores (excluded candidates) get no contribution."""
    out = np.zeros(len(score_rows[0]), np.float64)
    for s in score_rows:
        s = np.asarray(s, np.float64)
        order = np.argsort(-s, kind="stable")
        ranks = np.empty(len(s), np.float64)
        ranks[order] = np.arange(1, len(s) + 1)
        out += np.where(np.isfinite(s), 1.0 / (k + ranks), 0.0)
    return out


def add_geometry(scores: np.ndarray, inliers: np.ndarray, weight: float) -> np.ndarray:
    """scores + weight * geometry_evidence(inliers): the verified-inlier bonus of `geometry.combine`
    (0 at or below its floor) with a chosen weight; works elementwise on arrays."""
    ev = np.vectorize(geometry_evidence, otypes=[np.float64])(np.asarray(inliers, np.int64))
    return np.asarray(scores, np.float64) + weight * ev


# z-scores are put back on roughly a cosine's scale before the geometry bonus is added: one standard
# deviation of a query's global gallery cosines is ~0.05-0.1 on both evaluation sets (bench.eval_scenes_local).
Z_SCALE = 0.1


def zscore_fusion(*score_rows: np.ndarray) -> np.ndarray:
    """Mean of per-query standardised scores ((s - mean) / std over each row's finite entries) of
    several similarities, times Z_SCALE: scale-free, so a similarity with small values (ASMK: 0.001-0.1)
    weighs as much as a cosine. Works on (n,) rows or (q, n) matrices; non-finite entries stay -inf."""
    out = 0.0
    for s in score_rows:
        s = np.asarray(s, np.float64)
        finite = np.isfinite(s)
        x = np.where(finite, s, np.nan)
        mu = np.nanmean(x, axis=-1, keepdims=True)
        sd = np.nanstd(x, axis=-1, keepdims=True)
        out = out + (x - mu) / np.where(sd > 0, sd, 1.0)
    out = Z_SCALE * out / len(score_rows)
    return np.where(np.isnan(out), -np.inf, out)
