"""Approximate indexes: chosen by size, recall measured against exact and recorded, correct ids
and scores; the multi-index hash for PDQ range search; `vidpipe bench index`.

The auto threshold is lowered per test (`IndexPolicy.exact_max_bytes`) so that the approximate
path runs on 12k-30k vectors of the benchmark's clustered generator in a few seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_json

from indexer import binary_index
from indexer.bench import OUTPUT_KEYS, face_like, pdq_like
from indexer.binary_index import BinaryIndex
from indexer.float_index import (
    FLOAT_EXACT_MAX_BYTES,
    KIND_FLAT,
    KIND_IVF_FLAT,
    KIND_IVF_PQ,
    FloatIndex,
    array_source,
    choose_float_kind,
    default_nlist,
    exact_neighbours,
    recall_at_k,
    tune_nprobe,
)
from indexer.store import load_index, manifest_path, save_index
from vidpipe.search.build import IndexPolicy, ensure_indexes, index_counts, parse_bytes
from vidpipe.store.casedb import open_case

EMBEDDER = "facenet-test@0123456789abcdef"


def test_kind_is_chosen_by_size_and_memory_bound():
    face_limit = FLOAT_EXACT_MAX_BYTES // (4 * 512)
    assert choose_float_kind(face_limit, 512) == KIND_FLAT
    assert choose_float_kind(face_limit + 1, 512) == KIND_IVF_FLAT
    assert choose_float_kind(face_limit, 1280) == KIND_IVF_FLAT          # scene vectors are 2.5x larger
    assert choose_float_kind(10**6, 512, max_index_bytes=1 << 30) == KIND_IVF_PQ   # 2 GB raw > 1 GB bound
    assert choose_float_kind(10**6, 512, max_index_bytes=4 << 30) == KIND_IVF_FLAT
    assert choose_float_kind(1000, 512, max_index_bytes=1 << 20) == KIND_IVF_PQ
    assert choose_float_kind(100, 512, exact_max_bytes=100 * 2048) == KIND_FLAT
    assert choose_float_kind(101, 512, exact_max_bytes=100 * 2048) == KIND_IVF_FLAT
    assert default_nlist(1_000_000) == 2048 and default_nlist(20_000) == 256 and default_nlist(100) == 2
    assert parse_bytes("4G") == 4 << 30 and parse_bytes("512m") == 512 << 20 and parse_bytes("") is None
    with pytest.raises(ValueError):
        parse_bytes("lots")
    with pytest.raises(ValueError):
        IndexPolicy(kind="annoy")


@pytest.fixture(scope="module")
def faces():
    return face_like(20_000, 100, seed=3)


def test_ivf_flat_recall_ids_scores_and_round_trip(faces, tmp_path):
    ids = np.random.default_rng(0).choice(10**12, len(faces.vectors), replace=False)
    index = FloatIndex(512, KIND_IVF_FLAT)
    index.build(ids, faces.vectors)
    assert not index.exact and index.params["nlist"] == 256
    tuning = tune_nprobe(index, ids, faces.vectors)
    assert tuning["recall_at_10"] >= 0.95 and tuning["nprobe"] == index.params["nprobe"] < 256
    assert tuning["recall_by_nprobe"][str(tuning["nprobe"])] == tuning["recall_at_10"]
    # Held-out queries: recall against exact, and every score is the true inner product of its id.
    truth = ids[exact_neighbours(faces.vectors, faces.queries, 10)]
    scores, found = index.search(faces.queries, 10)
    assert recall_at_k(found, truth) >= 0.9
    row_of = {int(i): r for r, i in enumerate(ids)}
    true_scores = np.array([[faces.vectors[row_of[int(i)]] @ q for i in row] for row, q in zip(found, faces.queries)])
    np.testing.assert_allclose(scores, true_scores, atol=1e-5)
    assert set(index.ids().tolist()) == set(ids.tolist())
    # Saved and loaded: same kind, nprobe and answers; removal works without a rebuild.
    save_index(tmp_path, "face", index, {"x": 1}, index.params)
    loaded = load_index(tmp_path, "face", {"x": 1}).index
    assert loaded.kind == KIND_IVF_FLAT and loaded.params == index.params
    np.testing.assert_array_equal(loaded.search(faces.queries, 10)[1], found)
    assert loaded.remove(found[:, 0]) == len(set(found[:, 0].tolist()))
    assert not np.isin(loaded.search(faces.queries, 10)[1], found[:, 0]).any()
    with pytest.raises(ValueError):
        loaded.add(ids[5:6], faces.vectors[5:6])   # still present


def test_ivf_pq_is_compressed_and_reranks_exactly(faces):
    ids = np.arange(len(faces.vectors)) * 3 + 7
    index = FloatIndex(512, KIND_IVF_PQ)
    index.build(ids, faces.vectors)
    tuning = tune_nprobe(index, ids, faces.vectors)   # measured as search runs it: re-ranked
    p = index.params
    assert p["pq_m"] == 64 and p["pq_bits"] == 8 and index.kind == KIND_IVF_PQ and not index.reranks
    # Per vector: pq_m code bytes + an 8-byte id; the rest is fixed (cells, codebooks).
    fixed = len(FloatIndex(512, KIND_IVF_PQ).to_bytes())
    grown = len(index.to_bytes()) - 4 * (p["nlist"] * 512) - fixed
    assert grown / len(ids) <= p["pq_m"] + 8 + 40   # + the codebooks, amortised over only 20k vectors
    assert tuning["recall_at_10"] >= 0.9
    truth = ids[exact_neighbours(faces.vectors, faces.queries, 10)]
    plain = recall_at_k(index.search(faces.queries, 10)[1], truth)   # PQ scores only
    index.rerank_source = array_source(ids, faces.vectors)
    scores, found = index.search(faces.queries, 10)
    assert recall_at_k(found, truth) >= max(0.9, plain + 0.05)
    rows = (found - 7) // 3
    np.testing.assert_allclose(scores, np.einsum("qkd,qd->qk", faces.vectors[rows], faces.queries), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()
    # An id the source no longer has (a deleted row) is dropped, never scored by guess.
    gone = int(found[0, 0])
    full = index.rerank_source
    index.rerank_source = lambda wanted: np.where((np.asarray(wanted) == gone)[:, None], np.nan, full(wanted))
    assert gone not in index.search(faces.queries[:1], 10)[1][0]


def _face_case(root, vectors):
    paths, conn = open_case(root, create=True)
    conn.execute("INSERT INTO runs(run_id, command, started_utc, status, argv, tool_version, libraries, config, "
                 "config_hash) VALUES ('r', 'ingest', '2026-01-01T00:00:00Z', 'completed', '[]', 't', '{}', '{}', 'h')")
    for key, role in ((EMBEDDER, "face_embedder"), ("det@0", "face_detector")):
        conn.execute("INSERT INTO models(model_key, name, role, weights_sha256, info, first_run) VALUES (?,?,?,?,?,'r')",
                     (key, key, role, "0" * 64, "{}"))
    conn.execute("INSERT INTO media(sha256, md5, sha1, size, mime, label, kind, state, status, first_run) "
                 "VALUES (?, 'm', 's', 1, 'image/jpeg', 'JPEG', 'image', 'done', 'ok', 'r')", ("a" * 64,))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO faces(sha256, face_index, x1, y1, x2, y2, det_score, detector, embedder, embedding, "
                     "run_id) VALUES (?,?,0,0,1,1,0.9,'det@0',?,?,'r')",
                     [("a" * 64, i, EMBEDDER, v.astype("<f4").tobytes()) for i, v in enumerate(vectors)])
    conn.execute("COMMIT")
    return paths, conn


def test_case_index_goes_approximate_above_the_threshold_and_says_so(faces, tmp_path):
    paths, conn = _face_case(tmp_path / "case", faces.vectors[:12_000])
    small = IndexPolicy(exact_max_bytes=10_000 * 512 * 4)
    handle = ensure_indexes(paths, conn, ("face",), policy=small)["face"]
    assert handle.index.kind == KIND_IVF_FLAT and handle.status == "built"
    described = handle.describe()
    assert described["exact"] is False and described["recall_at_10"] >= 0.95 and described["nprobe"] >= 1
    manifest = json.loads(manifest_path(paths.indexes, "face").read_text())
    assert manifest["kind"] == KIND_IVF_FLAT and manifest["params"]["recall_at_10"] == described["recall_at_10"]
    assert manifest["params"]["recall_sample"] == 256
    counts = index_counts(conn, paths.indexes)["face"]
    assert counts["status"] == "ok" and counts["kind"] == KIND_IVF_FLAT and counts["recall_at_10"] >= 0.95
    again = ensure_indexes(paths, conn, ("face",), policy=small)["face"]
    assert again.status == "loaded" and again.index.params["nprobe"] == described["nprobe"]
    assert again.describe()["recall_at_10"] == described["recall_at_10"]
    # The ids are the database's face ids: each stored face finds itself first.
    rows = conn.execute("SELECT face_id, embedding FROM faces ORDER BY face_id LIMIT 50").fetchall()
    found = again.index.search(np.stack([np.frombuffer(r[1], "<f4") for r in rows]), 1)[1][:, 0]
    assert (found == [r[0] for r in rows]).mean() >= 0.98
    # Under the default policy the same case is small: the sound IVF file is replaced by an exact one.
    exact = ensure_indexes(paths, conn, ("face",), policy=IndexPolicy())["face"]
    assert exact.index.kind == KIND_FLAT and exact.status == "rebuilt" and "policy" in exact.reason
    assert exact.manifest.generation == again.manifest.generation + 1
    pq = ensure_indexes(paths, conn, ("face",), policy=IndexPolicy(max_index_bytes=1 << 20))["face"]
    assert pq.index.kind == KIND_IVF_PQ and pq.describe()["pq_m"] == 64 and pq.describe()["recall_at_10"] >= 0.9
    assert pq.index.reranks and pq.describe()["rerank"].startswith("exact")
    scores, found = pq.index.search(np.stack([np.frombuffer(r[1], "<f4") for r in rows]), 1)
    assert (found[:, 0] == [r[0] for r in rows]).mean() >= 0.98
    np.testing.assert_allclose(scores[found[:, 0] == [r[0] for r in rows]], 1.0, atol=1e-5)


def test_policy_from_environment(monkeypatch):
    monkeypatch.setenv("VIDPIPE_FLOAT_INDEX", "ivf-pq-ip")
    monkeypatch.setenv("VIDPIPE_MAX_INDEX_BYTES", "2G")
    policy = IndexPolicy.from_env()
    assert policy.kind == KIND_IVF_PQ and policy.max_index_bytes == 2 << 30
    assert policy.float_kind(50_000, 512) == KIND_IVF_PQ
    assert policy.float_kind(5_000, 512) == KIND_FLAT      # too few vectors to train PQ: exact
    monkeypatch.setenv("VIDPIPE_FLOAT_INDEX", "nope")
    from vidpipe.errors import UsageError

    with pytest.raises(UsageError):
        IndexPolicy.from_env()


@pytest.mark.parametrize("radius", [0, 8, 15, 16, 31, 40])
def test_multi_index_hash_range_search_is_exact(monkeypatch, radius):
    monkeypatch.setattr(binary_index, "MIH_MIN_CODES", 1000)
    data = pdq_like(30_000, 60, seed=5)
    # Skewed codes too: a block of near-identical codes makes some probes hit many rows.
    codes = data.codes.copy()
    codes[:3000] = codes[0] ^ (np.random.default_rng(1).random((3000, 32)) < 0.02).astype(np.uint8)
    queries = np.concatenate([data.queries, codes[:3]])
    ids = np.random.default_rng(2).choice(10**12, len(codes), replace=False)
    index = BinaryIndex(256)
    index.build(ids, codes)
    assert index.range_method == "mih"
    words = codes.view(np.uint64)
    for q, (d, j) in zip(queries, index.range_search(queries, radius)):
        true = np.bitwise_count(words ^ q.view(np.uint64)).sum(axis=1)
        keep = true <= radius
        assert set(j.tolist()) == set(ids[keep].tolist())
        np.testing.assert_array_equal(d, np.sort(true[keep]))
    # Removing invalidates the hash: removed ids never come back.
    assert index.remove(ids[:100]) == 100
    assert not np.isin(np.concatenate([j for _, j in index.range_search(queries, radius)]), ids[:100]).any()


def test_bench_cli_prints_the_issue_keys_in_order():
    out = run_json("bench", "index", "--kind", "face", "--n", "12000", "--queries", "30", "--index", "ivf", "--json")
    assert list(out)[:len(OUTPUT_KEYS)] == list(OUTPUT_KEYS)
    assert out["n"] == 12000 and out["dim"] == 512 and out["index"] == KIND_IVF_FLAT
    assert 0.8 <= out["recall_at_10"] <= 1.0 and out["p50_ms"] > 0 and out["exact_p50_ms"] > 0
    assert out["bytes_per_vector"] > 2048 and out["threads"] == 1
    pdq = run_json("bench", "index", "--kind", "pdq", "--n", "70000", "--queries", "30", "--json")
    assert list(pdq)[:len(OUTPUT_KEYS)] == list(OUTPUT_KEYS)
    assert pdq["index"] == "binary-flat+scan" and pdq["recall_at_10"] == 1.0 and pdq["true_matches"] >= 30
