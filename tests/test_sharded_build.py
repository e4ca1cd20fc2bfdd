"""Train once, add per shard, merge: the merged index equals the one a single process builds."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer.sharded_build import (
    add_shard,
    from_bytes,
    merge_in_memory,
    merge_on_disk,
    to_bytes,
    train_empty,
    write_shard,
)

N, DIM, NLIST, SHARDS = 12_000, 32, 64, 4


def clustered(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(200, DIM)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    vectors = clustered(N, rng)
    ids = rng.permutation(10 * N)[:N].astype(np.int64)  # database ids: sparse, not 0..N-1
    queries = vectors[rng.choice(N, 100, replace=False)] + 0.05 * rng.normal(size=(100, DIM)).astype(np.float32)
    sample = vectors[rng.choice(N, 10_000, replace=False)]  # >= 39 x 256 for the PQ codebooks
    return ids, vectors, queries, sample


@pytest.mark.parametrize("pq_m", [None, 8])
def test_sharded_build_equals_a_single_build(data, tmp_path: Path, pq_m: int | None) -> None:
    ids, vectors, queries, sample = data
    trained = to_bytes(train_empty(sample, NLIST, pq_m=pq_m))
    single = from_bytes(trained)
    single.add_with_ids(vectors, ids)
    bounds = np.linspace(0, N, SHARDS + 1).astype(int)
    shards = [add_shard(trained, ids[a:b], vectors[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    in_memory = merge_in_memory(trained, shards)
    paths = [write_shard(s, tmp_path / f"shard{i}.index") for i, s in enumerate(shards)]
    on_disk = merge_on_disk(trained, paths, tmp_path / "merged.ivfdata", tmp_path / "merged.index")
    assert (tmp_path / "merged.ivfdata").stat().st_size > 0

    for index in (single, in_memory, on_disk):
        assert index.ntotal == N
        faiss.extract_index_ivf(index).nprobe = 16
    want_d, want_i = single.search(queries, 10)
    for index in (in_memory, on_disk):
        got_d, got_i = index.search(queries, 10)
        # Same lists, same codes: identical neighbours (ties aside) and scores.
        assert np.allclose(got_d, want_d, atol=1e-5)
        assert np.mean(got_i == want_i) > 0.99
    # The ids are the database ids, and the approximate index finds the exact neighbours.
    exact = faiss.IndexIDMap(faiss.IndexFlatIP(DIM))
    exact.add_with_ids(vectors, ids)
    _, exact_i = exact.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_i, want_i)])
    assert recall >= (0.9 if pq_m is None else 0.3), recall  # PQ codes are lossy (no re-ranking)
    assert set(np.unique(want_i[want_i >= 0])) <= set(ids)


def test_add_shard_refuses_a_filled_index(data) -> None:
    ids, vectors, _, sample = data
    trained = to_bytes(train_empty(sample, NLIST))
    filled = add_shard(trained, ids[:10], vectors[:10])
    with pytest.raises(ValueError):
        add_shard(filled, ids[10:20], vectors[10:20])
