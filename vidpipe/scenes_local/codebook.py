"""A visual vocabulary learned without labels: k-means (FAISS) over local descriptors of the case's
own images, and nearest-word assignment.

Why the case's own images: no photo leaves the lab and nothing is downloaded, so the vocabulary
cannot come from a public training set; k-means needs no labels, and with a few hundred words it
converges on a few hundred thousand descriptors (39 training points per centroid is FAISS's
minimum; fewer points give a warning and a usable but coarser vocabulary).
"""

from __future__ import annotations

import numpy as np

# Lloyd iterations: FAISS's default is 25; on RootSIFT the objective changes < 0.5 % after ~20.
NITER = 20
# Training points per word kept at most (FAISS subsamples above 256 per centroid anyway).
MAX_POINTS_PER_WORD = 256
SEED = 1234  # fixed: the same images give the same vocabulary, run after run


def train(descriptors: np.ndarray, k: int, *, niter: int = NITER, seed: int = SEED) -> np.ndarray:
    """(k', d) float32 centroids of `descriptors` (N, d) by k-means, k' = min(k, N).

    Deterministic for the same input (subsample and FAISS seeded). Raises ValueError on no data."""
    import faiss

    x = np.ascontiguousarray(descriptors, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError("no descriptors to learn a codebook from")
    k = int(min(k, len(x)))
    cap = k * MAX_POINTS_PER_WORD
    if len(x) > cap:
        x = x[np.random.default_rng(seed).choice(len(x), cap, replace=False)]
    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, verbose=False, spherical=False)
    km.train(x)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def assign(descriptors: np.ndarray, centroids: np.ndarray, m: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(indices (N, m), squared distances (N, m)) of the m nearest words of each descriptor."""
    import faiss

    x = np.ascontiguousarray(descriptors, dtype=np.float32)
    if len(x) == 0:
        return np.zeros((0, m), np.int64), np.zeros((0, m), np.float32)
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    dist, idx = index.search(x, min(m, len(centroids)))
    return idx.astype(np.int64), dist
