"""Binary code index for perceptual hashes (PDQ 256 bits, pHash 64 bits): Hamming distance.

`IndexBinaryFlat` is an exhaustive popcount scan, exact at any size we expect per case (10M PDQ
codes are 320 MB and scan in well under a second), so there is no approximate variant.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from indexer.base import Index, as_ids

KIND_BINARY_FLAT = "binary-flat"


def codes_from_hex(values: Iterable[str], bits: int) -> np.ndarray:
    """Hex hashes (most significant bit first, as stored in `signals.value`) to packed uint8 codes."""
    nbytes = bits // 8
    rows = [bytes.fromhex(v) for v in values]
    if any(len(r) != nbytes for r in rows):
        raise ValueError(f"expected {bits}-bit hex hashes")
    if not rows:
        return np.zeros((0, nbytes), np.uint8)
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), nbytes).copy()


def hamming(codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances between packed codes, (len(a), len(b)) int32 (numpy, for checks)."""
    x = np.bitwise_xor(codes_a[:, None, :], codes_b[None, :, :])
    return np.unpackbits(x, axis=2).sum(axis=2, dtype=np.int32)


class BinaryIndex(Index):
    """`IndexBinaryIDMap2` over `IndexBinaryFlat`; ``dim`` is the code length in bits."""

    kind = KIND_BINARY_FLAT
    metric = "hamming"

    def __init__(self, bits: int) -> None:
        if bits % 8:
            raise ValueError("bits must be a multiple of 8")
        super().__init__(bits)
        self._index = self._new()

    def _new(self):
        import faiss

        return faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(self.dim))

    def _codes(self, codes) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(codes, dtype=np.uint8))
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.shape[1] != self.dim // 8:
            raise ValueError(f"expected {self.dim // 8}-byte codes, got shape {x.shape}")
        return x

    def build(self, ids, vectors) -> None:
        self._index = self._new()
        self.add(ids, vectors)

    def add(self, ids, vectors) -> None:
        ids = as_ids(ids)
        if len(ids) == 0:
            return
        x = self._codes(vectors)
        if len(x) != len(ids):
            raise ValueError(f"{len(ids)} ids for {len(x)} codes")
        if len(self) and np.isin(ids, self.ids()).any():
            raise ValueError("some ids are already in the index")
        self._index.add_with_ids(x, ids)

    def remove(self, ids) -> int:
        import faiss

        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids))) if len(ids) else 0

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = self._codes(queries)
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(q), 0), np.int32), np.zeros((len(q), 0), np.int64)
        distances, ids = self._index.search(q, k)
        return distances.astype(np.int32), ids

    def range_search(self, queries, radius: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every code at Hamming distance <= radius, nearest first."""
        q = self._codes(queries)
        if len(self) == 0:
            return [(np.zeros(0, np.int32), np.zeros(0, np.int64)) for _ in q]
        # FAISS's binary range search keeps distances strictly below its radius.
        lims, distances, ids = self._index.range_search(q, int(radius) + 1)
        out = []
        for i in range(len(q)):
            d, j = distances[lims[i]:lims[i + 1]].astype(np.int32), ids[lims[i]:lims[i + 1]]
            order = np.lexsort((j, d))
            out.append((d[order], j[order]))
        return out

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def to_bytes(self) -> bytes:
        import faiss

        return faiss.serialize_index_binary(self._index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, kind: str = KIND_BINARY_FLAT) -> BinaryIndex:
        import faiss

        if kind != KIND_BINARY_FLAT:
            raise ValueError(f"unknown binary index kind {kind!r}")
        raw = faiss.deserialize_index_binary(np.frombuffer(data, dtype=np.uint8))
        if not isinstance(raw, faiss.IndexBinaryIDMap2):
            raise ValueError(f"expected an IndexBinaryIDMap2, file holds {type(raw).__name__}")
        index = cls.__new__(cls)
        Index.__init__(index, raw.d)
        index._index = raw
        return index

    def __len__(self) -> int:
        return int(self._index.ntotal)
