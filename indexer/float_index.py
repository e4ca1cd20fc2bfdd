"""Float vector index for face (and later scene) embeddings: inner product on L2-normalised float32.

Exact search (`IndexFlatIP`) while the index is small; an HNSW graph above
`FLOAT_EXACT_MAX_VECTORS`. Which one was used is the index's `kind`, recorded in the manifest and
reported by search, so an approximate answer is never mistaken for an exhaustive one.
"""

from __future__ import annotations

import numpy as np

from indexer.base import Index, as_ids

KIND_FLAT = "flat-ip"
KIND_HNSW = "hnsw-ip"
# Exhaustive search up to 1M vectors: 512-d float32 is 2 GB and a flat scan stays well under a
# second per query on a workstation (faiss wiki "Guidelines to choose an index": flat below ~1M).
FLOAT_EXACT_MAX_VECTORS = 1_000_000
# HNSW parameters: M=32 neighbours, efConstruction 40 / efSearch 16 are faiss's defaults; we raise
# both for recall (faiss wiki "Indexing 1M vectors": efSearch 128 gives R@1 > 0.99 on SIFT1M).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128


def choose_float_kind(n_vectors: int) -> str:
    """Exact below the size threshold, HNSW above it."""
    return KIND_FLAT if n_vectors <= FLOAT_EXACT_MAX_VECTORS else KIND_HNSW


def l2_normalise(vectors, dim: int) -> np.ndarray:
    """float32 (n, dim) rows scaled to unit length (zero rows stay zero)."""
    x = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
    if x.shape[1] != dim:
        raise ValueError(f"expected {dim}-d vectors, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.maximum(norms, 1e-12)
    return np.ascontiguousarray(x)


class FloatIndex(Index):
    """`IndexIDMap2` over `IndexFlatIP` (exact) or `IndexHNSWFlat` (approximate, inner product)."""

    kind = KIND_FLAT
    metric = "ip"

    def __init__(self, dim: int, kind: str = KIND_FLAT) -> None:
        super().__init__(dim)
        if kind not in (KIND_FLAT, KIND_HNSW):
            raise ValueError(f"unknown float index kind {kind!r}")
        self.kind = kind  # instance value: which structure this index really is
        self._index = self._new()

    @property
    def exact(self) -> bool:  # type: ignore[override]
        return self.kind == KIND_FLAT

    def _new(self):
        import faiss

        if self.kind == KIND_FLAT:
            inner = faiss.IndexFlatIP(self.dim)
        else:
            inner = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        return faiss.IndexIDMap2(inner)

    def build(self, ids, vectors) -> None:
        self._index = self._new()
        self.add(ids, vectors)

    def add(self, ids, vectors) -> None:
        ids = as_ids(ids)
        x = l2_normalise(vectors, self.dim) if len(ids) else np.zeros((0, self.dim), np.float32)
        if len(x) != len(ids):
            raise ValueError(f"{len(ids)} ids for {len(x)} vectors")
        if len(ids) == 0:
            return
        if len(self) and np.isin(ids, self.ids()).any():
            raise ValueError("some ids are already in the index")
        self._index.add_with_ids(x, ids)

    def remove(self, ids) -> int:
        import faiss

        if self.kind == KIND_HNSW:  # FAISS's HNSW cannot delete: rebuild from the database instead
            raise NotImplementedError("an HNSW index cannot remove vectors; rebuild it")
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids))) if len(ids) else 0

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = l2_normalise(queries, self.dim)
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        scores, ids = self._index.search(q, k)
        return scores, ids

    def range_search(self, queries, radius: float) -> list[tuple[np.ndarray, np.ndarray]]:
        q = l2_normalise(queries, self.dim)
        if len(self) == 0:
            return [(np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in q]
        # FAISS returns inner products strictly greater than the radius; step just below it for ">=".
        lims, scores, ids = self._index.range_search(q, float(np.nextafter(np.float32(radius), np.float32(-2))))
        out = []
        for i in range(len(q)):
            s, j = scores[lims[i]:lims[i + 1]], ids[lims[i]:lims[i + 1]]
            order = np.argsort(-s, kind="stable")
            out.append((s[order], j[order]))
        return out

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def to_bytes(self) -> bytes:
        import faiss

        return faiss.serialize_index(self._index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, kind: str) -> FloatIndex:
        import faiss

        raw = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        index = cls.__new__(cls)
        Index.__init__(index, raw.d)
        index.kind = kind
        if not isinstance(raw, faiss.IndexIDMap2):
            raise ValueError(f"expected an IndexIDMap2, file holds {type(raw).__name__}")
        index._index = raw
        if kind == KIND_HNSW:
            faiss.downcast_index(index._index.index).hnsw.efSearch = HNSW_EF_SEARCH
        return index

    def __len__(self) -> int:
        return int(self._index.ntotal)
