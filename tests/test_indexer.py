"""Index classes, persistence with manifests, quarantine and rebuild from the case database.

No models are loaded here: the case databases are synthetic (rows inserted directly), so every
test runs in well under a second.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from indexer.binary_index import BinaryIndex, codes_from_hex, hamming
from indexer.float_index import KIND_FLAT, KIND_HNSW, FloatIndex
from indexer.store import QUARANTINE_DIR, QUARANTINE_KEEP, index_path, load_index, manifest_path, save_index
from vidpipe.search.build import ensure_indexes, index_counts
from vidpipe.store.casedb import open_case

DIM = 512
EMBEDDER = "facenet-test@0123456789abcdef"


def _unit(rng, n, dim=DIM):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ------------------------------------------------------------------------------------ float index
def test_float_index_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    vectors, ids = _unit(rng, 300), rng.choice(10**9, 300, replace=False)
    index = FloatIndex(DIM)
    index.build(ids, vectors)
    before = index.search(vectors[:20], 5)
    fp = {"rows": 300}
    manifest = save_index(tmp_path, "t", index, fp, {"note": "x"})
    assert manifest.vector_count == 300 and manifest.kind == KIND_FLAT and manifest.generation == 1
    loaded = load_index(tmp_path, "t", fp)
    assert loaded.problem is None and len(loaded.index) == 300
    after = loaded.index.search(vectors[:20], 5)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0])
    assert (after[1][:, 0] == ids[:20]).all()  # each vector finds itself first
    np.testing.assert_allclose(after[0][:, 0], 1.0, atol=1e-5)
    assert save_index(tmp_path, "t", index, fp).generation == 2
    # The plain save/load pair (no manifest) gives the same index.
    path = index.save(tmp_path / "plain", "p")
    assert path.name == "p.faiss"
    np.testing.assert_array_equal(FloatIndex.load(tmp_path / "plain", "p").search(vectors[:3], 3)[1], before[1][:3, :3])


def test_float_index_matches_brute_force_and_removes():
    rng = np.random.default_rng(2)
    vectors, ids = _unit(rng, 500), np.arange(1000, 1500)
    index = FloatIndex(DIM)
    index.build(ids, vectors)
    queries = _unit(rng, 7)
    scores, found = index.search(queries, 10)
    brute = queries @ vectors.T
    expected = ids[np.argsort(-brute, axis=1)[:, :10]]
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(scores, np.sort(brute, axis=1)[:, ::-1][:, :10], atol=1e-5)
    # range search: every vector with score >= 0.1
    for q, (s, j) in enumerate(index.range_search(queries, 0.1)):
        assert set(j.tolist()) == set(ids[brute[q] >= 0.1].tolist())
        assert (s >= 0.1).all() and (np.diff(s) <= 0).all()
    gone = expected[:, 0]
    assert index.remove(gone) == len(set(gone.tolist()))
    assert len(index) == 500 - len(set(gone.tolist()))
    assert not np.isin(index.search(queries, 10)[1], gone).any()
    assert index.remove(gone) == 0
    with pytest.raises(ValueError):
        index.add([1000 + 1], vectors[:1])  # still present: ids are unique
    with pytest.raises(ValueError):
        index.add([7, 7], vectors[:2])


def test_hnsw_path_is_labelled_and_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 200)
    index = FloatIndex(DIM, KIND_HNSW)
    index.build(np.arange(200), vectors)
    assert index.kind == KIND_HNSW and not index.exact
    assert (index.search(vectors[:10], 1)[1][:, 0] == np.arange(10)).all()
    with pytest.raises(NotImplementedError):
        index.remove([1])
    save_index(tmp_path, "h", index, {})
    loaded = load_index(tmp_path, "h", {})
    assert loaded.index.kind == KIND_HNSW and json.loads(manifest_path(tmp_path, "h").read_text())["kind"] == KIND_HNSW
    assert (loaded.index.search(vectors[:10], 1)[1][:, 0] == np.arange(10)).all()


# ----------------------------------------------------------------------------------- binary index
def test_binary_range_search_matches_brute_force_on_10k_codes():
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 256, (10_000, 32), dtype=np.uint8)
    # Plant neighbours at known distances around 40 query codes (random codes are ~128 bits apart).
    queries = rng.integers(0, 256, (40, 32), dtype=np.uint8)
    for qi, q in enumerate(queries):
        for slot, flips in enumerate((0, 5, 20, 31, 32, 40)):
            bits = np.unpackbits(q)
            bits[rng.choice(256, flips, replace=False)] ^= 1
            codes[qi * 6 + slot] = np.packbits(bits)
    ids = rng.choice(10**12, len(codes), replace=False)
    index = BinaryIndex(256)
    index.build(ids, codes)
    brute = hamming(queries, codes)
    for qi, (d, j) in enumerate(index.range_search(queries, 31)):
        expected = ids[brute[qi] <= 31]
        assert set(j.tolist()) == set(expected.tolist())
        assert len(expected) >= 4  # the planted 0, 5, 20 and 31-bit neighbours
        np.testing.assert_array_equal(np.sort(d), np.sort(brute[qi][brute[qi] <= 31]))
        assert (np.diff(d) >= 0).all()
    dist, found = index.search(queries, 5)
    np.testing.assert_array_equal(dist, np.sort(brute, axis=1)[:, :5])
    assert index.remove(ids[:6]) == 6
    assert not np.isin(index.range_search(queries[:1], 31)[0][1], ids[:6]).any()


def test_binary_phash_round_trip_and_hex(tmp_path):
    hexes = ["ffffffffffffffff", "0000000000000000", "f0f0f0f0f0f0f0f0"]
    codes = codes_from_hex(hexes, 64)
    index = BinaryIndex(64)
    index.build([10, 20, 30], codes)
    save_index(tmp_path, "phash", index, {"x": 1})
    loaded = load_index(tmp_path, "phash", {"x": 1}).index
    d, j = loaded.search(codes_from_hex(["fffffffffffffff0"], 64), 3)
    assert j[0].tolist() == [10, 30, 20] and d[0].tolist() == [4, 28, 60]
    with pytest.raises(ValueError):
        codes_from_hex(["abc"], 64)


# ------------------------------------------------------------------------- case database builds
def _make_case(root, n_media=40, faces_per_media=2, seed=5):
    """A case database with synthetic media, PDQ/pHash signals and faces."""
    rng = np.random.default_rng(seed)
    paths, conn = open_case(root, create=True)
    run = "run-1"
    conn.execute("INSERT INTO runs(run_id, command, started_utc, status, argv, tool_version, libraries, config, "
                 "config_hash) VALUES (?, 'ingest', '2026-01-01T00:00:00Z', 'completed', '[]', 't', '{}', '{}', 'h')",
                 (run,))
    for key, role in ((EMBEDDER, "face_embedder"), ("det@0", "face_detector")):
        conn.execute("INSERT INTO models(model_key, name, role, weights_sha256, info, first_run) VALUES (?,?,?,?,?,?)",
                     (key, key, role, "0" * 64, "{}", run))
    for m in range(n_media):
        sha = f"{m:064x}"
        conn.execute("INSERT INTO media(sha256, md5, sha1, size, mime, label, kind, state, status, first_run) "
                     "VALUES (?, 'm', 's', 1, 'image/jpeg', 'JPEG', 'image', 'done', 'ok', ?)", (sha, run))
        quality = 20 if m == 0 else 100  # one low-quality PDQ hash
        conn.execute("INSERT INTO signals VALUES (?, 'pdq', ?, ?, 'v1', ?)",
                     (sha, rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex(), quality, run))
        conn.execute("INSERT INTO signals VALUES (?, 'phash', ?, NULL, 'v1', ?)",
                     (sha, rng.integers(0, 256, 8, dtype=np.uint8).tobytes().hex(), run))
        for f in range(faces_per_media):
            _insert_face(conn, sha, f, _unit(rng, 1)[0], run)
    return paths, conn


def _insert_face(conn, sha, index, vector, run, video_time_s=None):
    conn.execute("INSERT INTO faces(sha256, frame_key, video_time_s, face_index, x1, y1, x2, y2, det_score, detector, "
                 "embedder, embedding, run_id) VALUES (?,?,?,?,0,0,10,10,0.99,'det@0',?,?,?)",
                 (sha, "" if video_time_s is None else f"{video_time_s:.3f}", video_time_s, index, EMBEDDER,
                  np.asarray(vector, "<f4").tobytes(), run))


def _face_results(handles, conn):
    vectors = [np.frombuffer(r[0], "<f4") for r in conn.execute("SELECT embedding FROM faces ORDER BY face_id LIMIT 5")]
    return handles["face"].index.search(np.stack(vectors), 3)


def test_ensure_indexes_builds_then_loads(tmp_path):
    paths, conn = _make_case(tmp_path / "case")
    first = ensure_indexes(paths, conn)
    assert {h.status for h in first.values()} == {"built"}
    assert len(first["face"].index) == 80
    assert len(first["phash"].index) == 40
    assert len(first["pdq"].index) == 39 and first["pdq"].params["excluded_low_quality"] == 1  # quality < 50
    second = ensure_indexes(paths, conn)
    assert {h.status for h in second.values()} == {"loaded"}
    a, b = _face_results(first, conn), _face_results(second, conn)
    np.testing.assert_array_equal(a[1], b[1])
    manifest = json.loads(manifest_path(paths.indexes, "face").read_text())
    for key in ("generation", "vector_count", "dim", "kind", "index_sha256", "db_fingerprint", "created_utc",
                "vidpipe_version"):
        assert key in manifest
    assert manifest["params"]["model_key"] == EMBEDDER and manifest["dim"] == DIM
    counts = index_counts(conn, paths.indexes)
    assert all(c["status"] == "ok" and c["index"] == c["db"] for c in (counts["face"], counts["phash"]))
    assert counts["pdq"]["index"] == counts["pdq"]["db"] == 39


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete_index", "garbage_manifest", "no_manifest"])
def test_damaged_index_is_quarantined_and_rebuilt(tmp_path, damage):
    paths, conn = _make_case(tmp_path / "case")
    handles = ensure_indexes(paths, conn)
    expected = _face_results(handles, conn)
    ipath, mpath = index_path(paths.indexes, "face"), manifest_path(paths.indexes, "face")
    if damage == "flip":
        data = bytearray(ipath.read_bytes())
        for pos in (len(data) // 3, len(data) // 2, len(data) - 10):
            data[pos] ^= 0xFF
        ipath.write_bytes(bytes(data))
    elif damage == "truncate":
        with open(ipath, "r+b") as f:
            f.truncate(os.path.getsize(ipath) // 2)
    elif damage == "delete_index":
        ipath.unlink()
    elif damage == "garbage_manifest":
        mpath.write_text("{not json")
    else:
        mpath.unlink()
    if damage in ("flip", "truncate"):
        counts = index_counts(conn, paths.indexes)
        assert counts["face"]["status"] == "corrupt" and not counts["face"]["ok"]
    rebuilt = ensure_indexes(paths, conn)
    assert rebuilt["face"].status == "rebuilt" and rebuilt["face"].reason
    assert rebuilt["pdq"].status == rebuilt["phash"].status == "loaded"
    after = _face_results(rebuilt, conn)
    np.testing.assert_array_equal(after[1], expected[1])
    np.testing.assert_allclose(after[0], expected[0], atol=1e-6)
    quarantined = list((paths.indexes / QUARANTINE_DIR).iterdir())
    assert any(p.name.endswith("face.reason.txt") for p in quarantined)
    assert ensure_indexes(paths, conn)["face"].status == "loaded"  # the rebuilt files are sound


def test_stale_manifest_and_database_changes_trigger_rebuild(tmp_path):
    paths, conn = _make_case(tmp_path / "case")
    ensure_indexes(paths, conn)
    # 1. A manifest whose fingerprint no longer matches the database.
    mpath = manifest_path(paths.indexes, "phash")
    manifest = json.loads(mpath.read_text())
    manifest["db_fingerprint"]["digest"] = "0" * 64
    mpath.write_text(json.dumps(manifest))
    assert index_counts(conn, paths.indexes)["phash"]["status"] == "stale"
    handles = ensure_indexes(paths, conn)
    assert handles["phash"].status == "rebuilt" and "stale" in handles["phash"].reason
    assert handles["phash"].manifest.generation == 2
    # 2. The database changed: a new face (a video frame) appears in a search after the rebuild.
    new_vector = _unit(np.random.default_rng(99), 1)[0]
    _insert_face(conn, f"{3:064x}", 0, new_vector, "run-1", video_time_s=2.5)
    counts = index_counts(conn, paths.indexes)
    assert counts["face"]["status"] == "stale" and counts["face"]["db"] == 81
    handles = ensure_indexes(paths, conn)
    assert handles["face"].status == "rebuilt" and len(handles["face"].index) == 81
    new_id = conn.execute("SELECT max(face_id) FROM faces").fetchone()[0]
    assert handles["face"].index.search(new_vector[None, :], 1)[1][0, 0] == new_id
    # 3. A deleted row (same count elsewhere would not hide it: ids are in the fingerprint).
    conn.execute("DELETE FROM faces WHERE face_id = 1")
    handles = ensure_indexes(paths, conn)
    assert handles["face"].status == "rebuilt" and 1 not in handles["face"].index.ids()
    assert index_counts(conn, paths.indexes)["face"]["status"] == "ok"


def test_quarantine_stays_bounded(tmp_path):
    paths, conn = _make_case(tmp_path / "case", n_media=3)
    for _ in range(QUARANTINE_KEEP + 3):
        ensure_indexes(paths, conn, ("phash",))
        ipath = index_path(paths.indexes, "phash")
        ipath.write_bytes(ipath.read_bytes()[:-1])
    ensure_indexes(paths, conn, ("phash",))
    reasons = [p for p in (paths.indexes / QUARANTINE_DIR).iterdir() if p.name.endswith("phash.reason.txt")]
    assert len(reasons) == QUARANTINE_KEEP


def test_empty_case_builds_empty_indexes(tmp_path):
    paths, conn = _make_case(tmp_path / "case", n_media=0)
    handles = ensure_indexes(paths, conn)
    assert all(len(h.index) == 0 for h in handles.values())
    assert handles["pdq"].index.search(np.zeros((1, 32), np.uint8), 5)[1].shape == (1, 0)
    assert ensure_indexes(paths, conn)["face"].status == "loaded"
