"""VLAD: one vector per image from its local descriptors and a codebook (Jégou et al., CVPR 2010),
with the normalisations that make it work for retrieval.

- residuals summed per word (descriptor minus its nearest centroid);
- intra-normalisation: each word's block L2-normalised (Arandjelović & Zisserman, CVPR 2013,
  "All about VLAD"): one bursty texture (a striped wallpaper, a patterned carpet) cannot dominate;
- power (signed square-root) normalisation, then a global L2 norm (Perronnin et al. 2010).
Cosine between two VLADs is then a similarity in [-1, 1], searchable with an inner-product index.
"""

from __future__ import annotations

import numpy as np

from vidpipe.scenes_local.codebook import assign

# Signed power: 0.5 (square root) is the value of Jégou et al. 2012 and Arandjelović 2013.
POWER = 0.5


def encode(descriptors: np.ndarray, centroids: np.ndarray, *, intra_norm: bool = True,
           power: float = POWER) -> np.ndarray:
    """(k * d,) float32 VLAD of (N, d) descriptors; L2 norm 1, or all zeros for no descriptors."""
    k, d = centroids.shape
    out = np.zeros((k, d), np.float32)
    x = np.asarray(descriptors, np.float32)
    if len(x):
        idx, _ = assign(x, centroids, 1)
        np.add.at(out, idx[:, 0], x - centroids[idx[:, 0]])
    if intra_norm:
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    v = out.ravel()
    if power != 1.0:
        v = np.sign(v) * np.abs(v) ** power
    n = np.linalg.norm(v)
    return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)


def encode_many(descriptor_sets: list[np.ndarray], centroids: np.ndarray, **options) -> np.ndarray:
    """(n, k * d) float32: `encode` of each image's descriptors."""
    return np.stack([encode(x, centroids, **options) for x in descriptor_sets]) if descriptor_sets else \
        np.zeros((0, centroids.size), np.float32)
