"""ASMK: aggregated selective match kernel over a small codebook (Tolias, Avrithis & Jégou, ICCV 2013
and IJCV 2016), the similarity of two images from their local descriptors.

Per image and visual word, the residuals of the descriptors assigned to that word are summed and
L2-normalised (one vector per word: bursts of one texture count once). Two images are compared
word by word over the words they share, and each cosine goes through the selectivity function
sigma(u) = u**ALPHA for u > TAU, else 0: weak, chance-level agreements vanish, strong ones count.
Unlike VLAD, words an image does not use cost nothing, so large codebooks stay cheap; unlike a
single global vector, a handful of strongly agreeing words (the door plate, the picture over the
desk) can make a match on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidpipe.scenes_local.codebook import assign

# Selectivity exponent and threshold of the paper (alpha = 3, tau = 0 for the non-binary ASMK).
ALPHA = 3.0
TAU = 0.0


@dataclass
class AsmkImage:
    """An image's aggregated words: sorted word ids (m,) and unit residual vectors (m, d)."""

    words: np.ndarray
    residuals: np.ndarray

    def __len__(self) -> int:
        return len(self.words)


def aggregate(descriptors: np.ndarray, centroids: np.ndarray) -> AsmkImage:
    """An AsmkImage from (N, d) descriptors (RootSIFT) and a codebook; empty words are left out."""
    x = np.asarray(descriptors, np.float32)
    if not len(x):
        return AsmkImage(np.zeros(0, np.int64), np.zeros((0, centroids.shape[1]), np.float32))
    idx = assign(x, centroids, 1)[0][:, 0]
    words, inverse = np.unique(idx, return_inverse=True)
    res = np.zeros((len(words), x.shape[1]), np.float32)
    np.add.at(res, inverse, x - centroids[idx])
    res /= np.maximum(np.linalg.norm(res, axis=1, keepdims=True), 1e-12)
    return AsmkImage(words.astype(np.int64), res)


def _raw(a: AsmkImage, b: AsmkImage, alpha: float, tau: float) -> float:
    common, ia, ib = np.intersect1d(a.words, b.words, assume_unique=True, return_indices=True)
    if not len(common):
        return 0.0
    u = np.einsum("ij,ij->i", a.residuals[ia], b.residuals[ib])
    u = u[u > tau]
    return float(np.sum(u ** alpha))


def similarity(a: AsmkImage, b: AsmkImage, *, alpha: float = ALPHA, tau: float = TAU) -> float:
    """Normalised ASMK similarity in [0, 1]: the kernel divided by both self-similarities (an image
    with many words is not favoured); 1 for identical word sets."""
    if not len(a) or not len(b):
        return 0.0
    # Self-similarity = number of words (each unit residual against itself gives 1).
    return _raw(a, b, alpha, tau) / float(np.sqrt(len(a) * len(b)))


def similarity_matrix(images: list[AsmkImage], *, alpha: float = ALPHA, tau: float = TAU) -> np.ndarray:
    """(n, n) float32 pairwise `similarity` (diagonal 1 for non-empty images)."""
    n = len(images)
    s = np.zeros((n, n), np.float32)
    for i in range(n):
        for j in range(i, n):
            s[i, j] = s[j, i] = similarity(images[i], images[j], alpha=alpha, tau=tau)
    return s
