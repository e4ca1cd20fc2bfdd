"""Float vector index for face and scene embeddings: inner product on L2-normalised float32.

Kinds (the ``kind`` recorded in the manifest and reported by search, so an approximate answer is
never mistaken for an exhaustive one):

- ``flat-ip``: exhaustive scan (`IndexFlatIP` under `IndexIDMap2`); exact.
- ``ivf-flat-ip``: inverted file over k-means cells, full vectors in the lists (`IndexIVFFlat`);
  approximate (only ``nprobe`` cells are scanned), scores are exact inner products.
- ``ivf-pq-ip``: inverted file with product-quantised residuals (`IndexIVFPQ`, ``pq_m`` bytes per
  vector); the compressed mode. PQ scores are approximate, so when the index has a
  ``rerank_source`` (the case database's own float32 copy of every vector, attached by
  `vidpipe.search.build`) it shortlists ``RERANK_FACTOR`` x k candidates and re-scores them exactly:
  the scores it returns are then true inner products, and the memory held stays the codes.
- ``hnsw-ip``: HNSW graph; explicit only, never chosen automatically: it cannot delete (every
  retention removal would rebuild it) and builds slowly on 2 cores (50k clustered 512-d vectors
  in 17.5 s; a 1M build had not finished after 12 min, where IVF-Flat takes ~2.6 min).

IVF indexes keep the caller's ids in their inverted lists (``add_with_ids``), so they need no
id map and delete natively; `choose_float_kind` picks the kind from the size, `tune_nprobe`
measures recall@10 against exact search on a sample of the indexed vectors and picks ``nprobe``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from indexer.base import Index, as_ids

KIND_FLAT = "flat-ip"
KIND_HNSW = "hnsw-ip"
KIND_IVF_FLAT = "ivf-flat-ip"
KIND_IVF_PQ = "ivf-pq-ip"
FLOAT_KINDS = (KIND_FLAT, KIND_IVF_FLAT, KIND_IVF_PQ, KIND_HNSW)
IVF_KINDS = (KIND_IVF_FLAT, KIND_IVF_PQ)

# Exhaustive search while one scan reads at most 512 MiB: measured ~35 ms per query for 200k x 512-d
# on one busy core of this 2-core machine (`vidpipe bench index --index flat`), i.e. 262,144 face
# vectors or 104,857 scene vectors (1280-d). Above it the scan grows linearly (~240 ms at 1M).
FLOAT_EXACT_MAX_BYTES = 512 * 1024 * 1024
# Kept for callers of the old constant: the face-size (512-d) threshold in vectors.
FLOAT_EXACT_MAX_VECTORS = FLOAT_EXACT_MAX_BYTES // (4 * 512)
# HNSW (explicit kind only): M=32; efConstruction 200 / efSearch 128 (faiss wiki "Indexing 1M vectors").
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128
# IVF: nlist ~ 2 sqrt(n), a power of two in [64, 8192] (faiss wiki "Guidelines to choose an index"
# suggests 4-16 sqrt(n) for batch throughput; half of the low end keeps k-means affordable on 2 cores
# and single-query latency is dominated by the cells scanned, not by the coarse quantiser).
IVF_NLIST_MIN, IVF_NLIST_MAX = 64, 8192
# k-means on 64 points per cell, 10 iterations (faiss warns below 39 points per centroid; its
# default is 25 iterations). Fewer points and iterations keep a 1M build near 2.5 min on 2 cores;
# what that costs in recall is not guessed: `tune_nprobe` measures it after every build.
IVF_TRAIN_POINTS_PER_LIST = 64
IVF_TRAIN_ITERATIONS = 10
# Compressed mode: 64 sub-quantisers x 8 bits = 64 code bytes per vector (+ 8 bytes id); the
# issue's bound is <= 128 bytes per vector.
PQ_M_DEFAULT = 64
PQ_BITS = 8
PQ_TRAIN_POINTS = 65_536
# nprobe tuning: the smallest nprobe whose recall@10 on the sample reaches the target; PQ indexes
# plateau below it (quantisation error), so tuning also stops when doubling gains < PLATEAU_GAIN.
RECALL_TARGET = 0.95
RECALL_SAMPLE = 256
RECALL_PLATEAU_GAIN = 0.005
RECALL_K = 10
# Compressed mode: shortlist 8 x k by PQ score, re-score exactly. On the face bench (200k) PQ64 alone
# gives recall@10 ~0.80 (quantisation swaps near-ties); re-ranking 8 x k recovers the IVF cells' recall.
RERANK_FACTOR = 8

VectorSource = Callable[[np.ndarray], np.ndarray]   # ids -> (len(ids), dim) float32 rows (NaN when unknown)


def choose_float_kind(n_vectors: int, dim: int = 512, *, exact_max_bytes: int | None = None,
                      max_index_bytes: int | None = None) -> str:
    """Exact while a scan stays small; IVF-Flat above; IVF-PQ when IVF-Flat would exceed
    ``max_index_bytes`` (the memory bound: vectors plus ids)."""
    limit = FLOAT_EXACT_MAX_BYTES if exact_max_bytes is None else exact_max_bytes
    raw_bytes = n_vectors * (4 * dim + 8)
    if n_vectors * 4 * dim <= limit:
        if max_index_bytes is None or raw_bytes <= max_index_bytes:
            return KIND_FLAT
        return KIND_IVF_PQ
    if max_index_bytes is not None and raw_bytes > max_index_bytes:
        return KIND_IVF_PQ
    return KIND_IVF_FLAT


# Smallest index each trained kind is built for: PQ's 256 centroids per sub-quantiser want >= 39
# training points each (faiss warns below 9,984); below these sizes an exact scan is cheap anyway.
MIN_VECTORS = {KIND_IVF_FLAT: 2 * 39, KIND_IVF_PQ: 10_000}


def feasible_kind(kind: str, n_vectors: int) -> str:
    """``kind``, or exact search when there are too few vectors to train it."""
    return KIND_FLAT if n_vectors < MIN_VECTORS.get(kind, 0) else kind


def default_nlist(n_vectors: int) -> int:
    """A power of two near 2 sqrt(n), bounded so that every cell gets >= 39 training points."""
    target = 2 * math.sqrt(max(n_vectors, 1))
    nlist = 2 ** round(math.log2(max(target, 1)))
    nlist = min(max(nlist, IVF_NLIST_MIN), IVF_NLIST_MAX)
    return max(1, min(nlist, n_vectors // 39))


def l2_normalise(vectors, dim: int) -> np.ndarray:
    """float32 (n, dim) rows scaled to unit length (zero rows stay zero)."""
    x = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
    if x.shape[1] != dim:
        raise ValueError(f"expected {dim}-d vectors, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.maximum(norms, 1e-12)
    return np.ascontiguousarray(x)


class FloatIndex(Index):
    """One of `FLOAT_KINDS`; ids are the caller's int64 ids in every kind."""

    kind = KIND_FLAT
    metric = "ip"

    def __init__(self, dim: int, kind: str = KIND_FLAT, *, nlist: int | None = None, nprobe: int | None = None,
                 pq_m: int = PQ_M_DEFAULT) -> None:
        super().__init__(dim)
        if kind not in FLOAT_KINDS:
            raise ValueError(f"unknown float index kind {kind!r}")
        if kind == KIND_IVF_PQ and dim % pq_m:
            # PQ splits the vector evenly: the largest sub-quantiser count <= pq_m that divides dim.
            pq_m = max(m for m in range(1, pq_m + 1) if dim % m == 0)
        self.kind = kind  # instance value: which structure this index really is
        self.nlist, self.nprobe, self.pq_m = nlist, nprobe, pq_m
        self.rerank_source: VectorSource | None = None
        self._index = self._new(nlist or IVF_NLIST_MIN)

    @property
    def reranks(self) -> bool:
        """True when searches re-score a PQ shortlist exactly (see ``rerank_source``)."""
        return self.kind == KIND_IVF_PQ and self.rerank_source is not None

    @property
    def exact(self) -> bool:  # type: ignore[override]
        return self.kind == KIND_FLAT

    @property
    def params(self) -> dict:
        """Structure parameters for the manifest (empty for flat)."""
        if self.kind in IVF_KINDS:
            ivf = self._ivf()
            out = {"nlist": int(ivf.nlist), "nprobe": int(ivf.nprobe)}
            if self.kind == KIND_IVF_PQ:
                out.update(pq_m=int(ivf.pq.M), pq_bits=int(ivf.pq.nbits), rerank_factor=RERANK_FACTOR)
            return out
        if self.kind == KIND_HNSW:
            return {"hnsw_m": HNSW_M, "ef_search": HNSW_EF_SEARCH}
        return {}

    def _new(self, nlist: int):
        import faiss  # lazy: heavy

        if self.kind == KIND_FLAT:
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if self.kind == KIND_HNSW:
            inner = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
            return faiss.IndexIDMap2(inner)
        quantiser = faiss.IndexFlatIP(self.dim)
        if self.kind == KIND_IVF_FLAT:
            index = faiss.IndexIVFFlat(quantiser, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFPQ(quantiser, self.dim, nlist, self.pq_m, PQ_BITS, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = IVF_TRAIN_ITERATIONS
        index.cp.max_points_per_centroid = IVF_TRAIN_POINTS_PER_LIST
        index.nprobe = min(self.nprobe or 1, nlist)
        return index

    def _ivf(self):
        return self._index  # IVF kinds are stored bare: their lists hold the caller's ids

    def build(self, ids, vectors) -> None:
        """Replace the contents; IVF kinds first train their cells (and codebooks) on a sample."""
        ids = as_ids(ids)
        if self.kind not in IVF_KINDS:
            self._index = self._new(0)
            self.add(ids, vectors)
            return
        x = l2_normalise(vectors, self.dim) if len(ids) else np.zeros((0, self.dim), np.float32)
        nlist = self.nlist or default_nlist(len(ids))
        nlist = max(1, min(nlist, len(ids) // 39 or 1))
        self._index = self._new(nlist)
        if len(ids):
            self._train(x)
            self._add_checked(ids, x)

    def _train(self, x: np.ndarray) -> None:
        ivf = self._index
        n_train = ivf.nlist * IVF_TRAIN_POINTS_PER_LIST
        if self.kind == KIND_IVF_PQ:
            n_train = max(n_train, PQ_TRAIN_POINTS)
        rng = np.random.default_rng(0)  # a fixed sample: the same rows give the same index
        sample = x if len(x) <= n_train else x[np.sort(rng.choice(len(x), n_train, replace=False))]
        ivf.train(sample)

    def add(self, ids, vectors) -> None:
        ids = as_ids(ids)
        x = l2_normalise(vectors, self.dim) if len(ids) else np.zeros((0, self.dim), np.float32)
        if len(x) != len(ids):
            raise ValueError(f"{len(ids)} ids for {len(x)} vectors")
        if len(ids) == 0:
            return
        if self.kind in IVF_KINDS and not self._index.is_trained:
            self.build(ids, x)  # an empty IVF index is trained (cells sized) on its first batch
            return
        self._add_checked(ids, x)

    def _add_checked(self, ids: np.ndarray, x: np.ndarray) -> None:
        if len(x) != len(ids):
            raise ValueError(f"{len(ids)} ids for {len(x)} vectors")
        if len(self) and np.isin(ids, self.ids()).any():
            raise ValueError("some ids are already in the index")
        step = 65_536  # bounded temporary memory while assigning cells
        for start in range(0, len(ids), step):
            self._index.add_with_ids(x[start:start + step], ids[start:start + step])

    def remove(self, ids) -> int:
        import faiss  # lazy: heavy

        if self.kind == KIND_HNSW:  # FAISS's HNSW cannot delete: rebuild from the database instead
            raise NotImplementedError("an HNSW index cannot remove vectors; rebuild it")
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids))) if len(ids) else 0

    def set_nprobe(self, nprobe: int) -> None:
        """Cells scanned per query (IVF kinds only)."""
        ivf = self._ivf()
        ivf.nprobe = max(1, min(int(nprobe), int(ivf.nlist)))
        self.nprobe = int(ivf.nprobe)

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = l2_normalise(queries, self.dim)
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if self.reranks:
            return self._search_reranked(q, k)
        scores, ids = self._index.search(q, k)
        return scores, ids

    def _search_reranked(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, shortlist = self._index.search(q, min(len(self), k * RERANK_FACTOR))
        scores, ids = np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        for i, row in enumerate(shortlist):
            cand = row[row >= 0]
            exact = unit_rows(self.rerank_source(cand), self.dim) @ q[i] if len(cand) else np.zeros(0, np.float32)
            keep = ~np.isnan(exact)   # a row the source no longer has is dropped, never guessed
            cand, exact = cand[keep], exact[keep]
            order = np.lexsort((cand, -exact))[:k]
            scores[i, :len(order)], ids[i, :len(order)] = exact[order], cand[order]
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
            if self.reranks and len(j):  # PQ candidates, kept only when their exact score is in range
                s = unit_rows(self.rerank_source(j), self.dim) @ q[i]
                keep = s >= radius
                s, j = s[keep], j[keep]
            order = np.argsort(-s, kind="stable")
            out.append((s[order], j[order]))
        return out

    def ids(self) -> np.ndarray:
        import faiss  # lazy: heavy

        if self.kind not in IVF_KINDS:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        invlists = self._ivf().invlists
        parts = []
        for cell in range(invlists.nlist):
            size = invlists.list_size(cell)
            if size:
                parts.append(faiss.rev_swig_ptr(invlists.get_ids(cell), size).copy())
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def to_bytes(self) -> bytes:
        import faiss  # lazy: heavy

        return faiss.serialize_index(self._index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, kind: str) -> FloatIndex:
        import faiss  # lazy: heavy

        if kind not in FLOAT_KINDS:
            raise ValueError(f"unknown float index kind {kind!r}")
        raw = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        expected = {KIND_FLAT: faiss.IndexIDMap2, KIND_HNSW: faiss.IndexIDMap2, KIND_IVF_FLAT: faiss.IndexIVFFlat,
                    KIND_IVF_PQ: faiss.IndexIVFPQ}[kind]
        if not isinstance(raw, expected):
            raise ValueError(f"kind {kind} expects {expected.__name__}, file holds {type(raw).__name__}")
        index = cls.__new__(cls)
        Index.__init__(index, raw.d)
        index.kind, index._index, index.pq_m = kind, raw, PQ_M_DEFAULT
        index.rerank_source = None
        index.nlist = index.nprobe = None
        if kind == KIND_HNSW:
            faiss.downcast_index(raw.index).hnsw.efSearch = HNSW_EF_SEARCH
        elif kind in IVF_KINDS:  # nprobe is part of FAISS's IVF serialisation
            index.nlist, index.nprobe = int(raw.nlist), int(raw.nprobe)
            if kind == KIND_IVF_PQ:
                index.pq_m = int(raw.pq.M)
        return index

    def __len__(self) -> int:
        return int(self._index.ntotal)


def unit_rows(vectors, dim: int) -> np.ndarray:
    """``vectors`` as contiguous float32 unit rows, copied only when they are not that already
    (stored embeddings are L2-normalised: a 1M x 512 copy would cost 2 GB for nothing)."""
    x = np.asarray(vectors)
    if x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == dim and x.flags.c_contiguous:
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        if len(x) == 0 or np.abs(norms - 1).max() < 1e-4:
            return x
    return l2_normalise(x, dim)


def array_source(ids: np.ndarray, vectors: np.ndarray) -> VectorSource:
    """A `VectorSource` over an array (in memory or memory-mapped) whose row i has id ``ids[i]``."""
    ids = np.asarray(ids, np.int64)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]

    def fetch(wanted: np.ndarray) -> np.ndarray:
        wanted = np.asarray(wanted, np.int64)
        pos = np.minimum(np.searchsorted(sorted_ids, wanted), max(len(sorted_ids) - 1, 0))
        out = np.asarray(vectors[order[pos]], np.float32) if len(sorted_ids) else \
            np.zeros((len(wanted), vectors.shape[1]), np.float32)
        missing = sorted_ids[pos] != wanted if len(sorted_ids) else np.ones(len(wanted), bool)
        if missing.any():
            out = out.copy()
            out[missing] = np.nan
        return out

    return fetch


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int, exclude=None) -> np.ndarray:
    """Ground truth: row numbers of the k best inner products per query, by brute force without
    copying ``vectors`` (``exclude[i]``: a row to leave out for query i, e.g. the query itself)."""
    import faiss  # lazy: heavy

    extra = 0 if exclude is None else 1
    _, rows = faiss.knn(np.ascontiguousarray(queries, np.float32), vectors, min(k + extra, len(vectors)),
                        metric=faiss.METRIC_INNER_PRODUCT)
    if exclude is None:
        return rows
    out = np.full((len(queries), k), -1, np.int64)
    for i, row in enumerate(rows):
        kept = row[row != exclude[i]][:k]
        out[i, :len(kept)] = kept
    return out


def recall_at_k(found_ids: np.ndarray, true_ids: np.ndarray) -> float:
    """Mean over queries of |found ∩ true| / k (the issue's recall@10 when k = 10)."""
    k = true_ids.shape[1]
    if len(true_ids) == 0 or k == 0:
        return 1.0
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / k for f, t in zip(found_ids, true_ids)]))


def tune_nprobe(index: FloatIndex, ids: np.ndarray, vectors: np.ndarray, *, target: float = RECALL_TARGET,
                sample: int = RECALL_SAMPLE, k: int = RECALL_K, seed: int = 0) -> dict:
    """Measure recall@k of an approximate index against exact search and set the smallest nprobe
    that reaches ``target`` (or where doubling it stops helping).

    The queries are ``sample`` of the indexed vectors themselves, each left out of both answers
    (a stored face searched against every other face: the situation of a real query). Returns
    what the manifest records: recall, sample size, target, nprobe and the recall per nprobe tried.
    """
    ids = np.asarray(ids, np.int64)
    n = len(ids)
    if index.exact:
        return {"recall_at_10": 1.0, "recall_sample": 0}
    if n <= k + 1:
        return {"recall_at_10": None, "recall_sample": 0}
    x_all = unit_rows(vectors, index.dim)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, min(sample, n), replace=False))
    queries = x_all[rows]
    truth = ids[exact_neighbours(x_all, queries, k, exclude=rows)]
    attached = index.rerank_source
    if index.kind == KIND_IVF_PQ and attached is None:  # measure the index as search will use it
        index.rerank_source = array_source(ids, x_all)
    if index.kind not in IVF_KINDS:  # HNSW: measured as configured
        found = _search_excluding_self(index, queries, ids[rows], k)
        return {"recall_at_10": round(recall_at_k(found, truth), 4), "recall_sample": len(rows)}
    nlist, nprobe, tried = index.params["nlist"], 1, {}
    while True:
        index.set_nprobe(nprobe)
        tried[nprobe] = recall_at_k(_search_excluding_self(index, queries, ids[rows], k), truth)
        gain = tried[nprobe] - tried.get(nprobe // 2, -1.0)
        if tried[nprobe] >= target or nprobe >= nlist:
            best = nprobe
            break
        if nprobe >= 8 and gain < RECALL_PLATEAU_GAIN:  # a plateau: the smaller nprobe is as good
            best = nprobe // 2
            break
        nprobe *= 2
    index.set_nprobe(best)
    index.rerank_source = attached
    return {"recall_at_10": round(tried[best], 4), "recall_sample": len(rows), "recall_target": target,
            "nprobe": index.nprobe, "recall_by_nprobe": {str(p): round(r, 4) for p, r in tried.items()}}


def _search_excluding_self(index: FloatIndex, x: np.ndarray, self_ids: np.ndarray, k: int) -> np.ndarray:
    _, found = index.search(x, k + 1)
    out = np.full((len(x), k), -1, np.int64)
    for i, row in enumerate(found):
        kept = row[row != self_ids[i]][:k]
        out[i, :len(kept)] = kept
    return out
