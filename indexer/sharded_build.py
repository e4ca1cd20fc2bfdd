"""Approximate float indexes built from shards: train once, add per shard, merge.

For 100 M face or scene vectors one process cannot add everything in reasonable time, and the
merged lists may not fit in memory. The recipe (FAISS IVF, the same for IVF-PQ):

1. ``train_empty``: k-means the coarse quantizer (and PQ codebooks) once, on a random sample
   (40-256 vectors per list), seeded so that a rebuild gives the same lists;
2. ``add_shard``: every worker adds its rows, with their database ids, to a copy of the trained
   *empty* index (``serialize_index`` bytes travel to the worker; shards are independent);
3. ``merge_in_memory`` (``IndexIVF.merge_from``) when the lists fit in RAM, or ``merge_on_disk``
   (``OnDiskInvertedLists`` via ``faiss.contrib.ondisk.merge_ondisk``) which writes one
   ``.ivfdata`` file that is memory-mapped at search time.

Because every shard shares the trained quantizer, list ``i`` of the merged index is the
concatenation of the shards' lists ``i``: the merge gives the index a single process adding all
vectors would give (same ids per list; order within a list follows the shard order).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np


def _f32(vectors) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32)


def train_empty(sample: np.ndarray, nlist: int, pq_m: int | None = None, pq_bits: int = 8,
                seed: int = 1234) -> faiss.Index:
    """A trained, empty IVF index (inner product on L2-normalised vectors).

    ``pq_m`` sub-quantizers make it IVF-PQ (``pq_m`` bytes per vector at 8 bits); else IVF-Flat.
    """
    sample = _f32(sample)
    dim = sample.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    if pq_m:
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, pq_bits, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(sample)
    index.own_fields = True
    quantizer.this.disown()  # the index owns its quantizer from here on
    return index


def to_bytes(index: faiss.Index) -> bytes:
    return faiss.serialize_index(index).tobytes()


def from_bytes(data: bytes) -> faiss.Index:
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))


def add_shard(trained: bytes, ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """One worker's job: its rows added to a copy of the trained empty index (bytes in, bytes out)."""
    index = from_bytes(trained)
    if index.ntotal:
        raise ValueError("add_shard needs the trained *empty* index")
    index.add_with_ids(_f32(vectors), np.ascontiguousarray(ids, dtype=np.int64))
    return to_bytes(index)


def merge_in_memory(trained: bytes, shards: Iterable[bytes]) -> faiss.Index:
    """Concatenate the shards' inverted lists into one index held in RAM."""
    merged = from_bytes(trained)
    for data in shards:
        shard = from_bytes(data)
        merged.merge_from(shard, 0)  # 0: keep the shards' ids (database ids), no shifting
    return merged


def merge_on_disk(trained: bytes, shard_paths: list[Path], ivfdata: Path, index_path: Path) -> faiss.Index:
    """Merge shard files into an on-disk inverted-list file; return the index memory-mapped.

    ``index_path`` is small (quantizer + list offsets) and names ``ivfdata``, which holds the codes
    and ids; neither the shards nor the result need to fit in RAM.
    """
    from faiss.contrib.ondisk import merge_ondisk  # lazy: heavy

    index = from_bytes(trained)
    merge_ondisk(index, [str(p) for p in shard_paths], str(ivfdata))
    faiss.write_index(index, str(index_path))
    del index
    return faiss.read_index(str(index_path))  # OnDiskInvertedLists map ivfdata themselves


def write_shard(data: bytes, path: Path) -> Path:
    """Store a shard produced by ``add_shard`` as a FAISS index file (for ``merge_on_disk``)."""
    faiss.write_index(from_bytes(data), str(path))
    return path
