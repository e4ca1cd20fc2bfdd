"""The scene plug-in contract: an embedder that turns whole images (people masked out) into room vectors.

Scene embedders register by name (see `vidpipe.extract.scenes`). A vector describes the room, not
the people in it: the caller passes the regions to hide (body rectangles from
`vidpipe.extract.scenes.masking.body_boxes`), and the embedder removes them from the pixels and from
its pooling. Vectors are float32 and L2-normalised, so inner product = cosine similarity and they go
into `indexer.float_index.FloatIndex` unchanged. Embedders are `vidpipe.models.base.InferenceModel`s:
models load lazily on first use (`load()`, under a lock); an embedder checks at construction that
its weights file exists, so a missing file fails a run at start-up (exit 3).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from vidpipe.models.base import InferenceModel

# x1, y1, x2, y2 in the image's pixel coordinates (the same convention as face boxes).
Box = tuple[float, float, float, float]


class SceneEmbedder(InferenceModel):
    """Whole-image room/scene descriptors; higher inner product = more likely the same place.

    Subclasses set `name` (registry name), `dim` and `version` (changes whenever vectors change:
    preprocessing, pooling or weights), and implement `_load`, `_predict(images, masks)` and
    `weights_info` ({"model", "weights_path", "weights_sha256", "licence", "training_data", ...}).
    """

    role: ClassVar[str] = "scene_embedder"
    dim: ClassVar[int]

    def embed_batch(self, images: Sequence[np.ndarray],
                    masks: Sequence[Sequence[Box] | None] | None = None) -> np.ndarray:
        """(len(images), dim) float32, L2-normalised, one row per RGB uint8 HxWx3 image (sizes may differ).

        masks: per image, rectangles to hide (people), or None for that image; None overall = none.
        """
        return self.predict(images, masks)

    @abstractmethod
    def _predict(self, images: Sequence[np.ndarray], masks: Sequence[Sequence[Box] | None] | None) -> np.ndarray:
        """`embed_batch` with the model loaded."""

    def embed(self, image: np.ndarray, mask: Sequence[Box] | None = None) -> np.ndarray:
        """(dim,) vector of one image."""
        return self.embed_batch([image], [mask])[0]


def check_masks(n_images: int, masks: Sequence[Sequence[Box] | None] | None) -> list[list[Box]]:
    """Normalise the `masks` argument to one (possibly empty) list of boxes per image."""
    if masks is None:
        return [[] for _ in range(n_images)]
    if len(masks) != n_images:
        raise ValueError(f"{len(masks)} mask lists for {n_images} images")
    out = []
    for boxes in masks:
        lst = [tuple(float(v) for v in b) for b in (boxes or [])]
        if any(len(b) != 4 for b in lst):
            raise ValueError("a mask box must be (x1, y1, x2, y2)")
        out.append(lst)
    return out


def expand_query(query: np.ndarray, corpus: np.ndarray, top_n: int = 2, alpha: float = 3.0) -> np.ndarray:
    """Alpha query expansion (Radenović et al., TPAMI 2019, "Fine-tuning CNN image retrieval"):
    the query plus its `top_n` nearest corpus vectors weighted by similarity**alpha, re-normalised.

    query: (dim,) or (q, dim); corpus: (n, dim), both L2-normalised. A neighbour that is the query
    itself (similarity ~1) is kept: it only re-weights towards the query. Returns the same shape.
    Use the expanded vector to re-order only: its cosines run high (part of it *is* the neighbours),
    so report and threshold the plain query's cosine (bench.eval_scenes: 17 false accepts otherwise).
    """
    q = np.atleast_2d(np.asarray(query, np.float32))
    c = np.asarray(corpus, np.float32)
    if top_n <= 0 or len(c) == 0:
        return q.reshape(np.shape(query)).copy()
    sims = q @ c.T
    k = min(top_n, len(c))
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    w = np.clip(np.take_along_axis(sims, idx, axis=1), 0.0, None) ** alpha
    out = q + np.einsum("qk,qkd->qd", w, c[idx])
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.reshape(np.shape(query)).astype(np.float32)
