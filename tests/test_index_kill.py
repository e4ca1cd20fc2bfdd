"""SIGKILL while an index is being written: the next open detects a torn or stale index,
quarantines it, rebuilds it from the case database, and no vector is lost.

A child process keeps the face index busy: it adds faces to the database and rebuilds and saves
the index in a loop (each save ~20 MB: serialise, checksum, temp file, fsync, rename, manifest).
It is killed at random moments, and at two chosen ones (half-way through writing the temp file;
between the index rename and the manifest rename). After every kill the parent opens the case
the way search does and checks the index holds exactly the database's face ids.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from indexer.store import QUARANTINE_DIR, cleanup_temp_files
from vidpipe.search.build import ensure_indexes, index_counts
from vidpipe.store.casedb import open_case

EMBEDDER = "facenet-test@0123456789abcdef"
N_FACES = 10_000
DIM = 512

CHILD = r"""
import os, signal, sys, time
import numpy as np
from indexer import store
from vidpipe.search.build import ensure_indexes
from indexer.store import save_index
from vidpipe.store.casedb import open_case

case, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(seed)
paths, conn = open_case(__import__("pathlib").Path(case), create=False)

def add_faces(n):
    x = rng.standard_normal((n, 512)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    conn.execute("BEGIN IMMEDIATE")
    start = conn.execute("SELECT coalesce(max(face_index), 0) + 1 FROM faces").fetchone()[0]
    for i, v in enumerate(x):
        conn.execute("INSERT INTO faces(sha256, face_index, x1, y1, x2, y2, det_score, detector, embedder, "
                     "embedding, run_id) VALUES (?,?,0,0,1,1,0.9,'det@0',?,?,'run-1')",
                     ("a" * 64, start + i, sys.argv[4], v.astype("<f4").tobytes()))
    conn.execute("COMMIT")

if mode != "loop":
    real_write = store.atomic_write_bytes
    def dying_write(path, data):
        if mode == "mid_write" and path.name.endswith(".faiss"):
            import tempfile
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.write(fd, data[: len(data) // 2])
            os.fsync(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        real_write(path, data)
        if mode == "after_index_rename" and path.name.endswith(".faiss"):
            os.kill(os.getpid(), signal.SIGKILL)
    store.atomic_write_bytes = dying_write
    print("ready", flush=True)
    if mode == "mid_write":      # new faces: the index is rebuilt and saved (killed half-way)
        add_faces(25)
        ensure_indexes(paths, conn, ("face",))
    else:                        # retention-style: rows deleted, ids removed, index saved over the old files
        from vidpipe.search.build import fingerprint
        handle = ensure_indexes(paths, conn, ("face",))["face"]
        gone = [r[0] for r in conn.execute("SELECT face_id FROM faces ORDER BY face_id DESC LIMIT 25")]
        conn.execute(f"DELETE FROM faces WHERE face_id IN ({','.join(map(str, gone))})")
        handle.index.remove(gone)
        save_index(paths.indexes, "face", handle.index, fingerprint(conn, "face", handle.params), handle.params)
    sys.exit(3)  # not reached: the write above kills the process

print("ready", flush=True)
while True:
    if rng.random() < 0.5:
        add_faces(int(rng.integers(1, 40)))        # the database moves on: the index on disk goes stale
    handle = ensure_indexes(paths, conn, ("face",))["face"]
    save_index(paths.indexes, "face", handle.index, handle.manifest.db_fingerprint, handle.manifest.params)
"""


def _make_case(root):
    rng = np.random.default_rng(11)
    paths, conn = open_case(root, create=True)
    conn.execute("INSERT INTO runs(run_id, command, started_utc, status, argv, tool_version, libraries, config, "
                 "config_hash) VALUES ('run-1', 'ingest', '2026-01-01T00:00:00Z', 'completed', '[]', 't', '{}', '{}', 'h')")
    for key, role in ((EMBEDDER, "face_embedder"), ("det@0", "face_detector")):
        conn.execute("INSERT INTO models(model_key, name, role, weights_sha256, info, first_run) VALUES (?,?,?,?,?,'run-1')",
                     (key, key, role, "0" * 64, "{}"))
    conn.execute("INSERT INTO media(sha256, md5, sha1, size, mime, label, kind, state, status, first_run) "
                 "VALUES (?, 'm', 's', 1, 'image/jpeg', 'JPEG', 'image', 'done', 'ok', 'run-1')", ("a" * 64,))
    x = rng.standard_normal((N_FACES, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO faces(sha256, face_index, x1, y1, x2, y2, det_score, detector, embedder, embedding, "
                     "run_id) VALUES (?,?,0,0,1,1,0.9,'det@0',?,?,'run-1')",
                     [("a" * 64, i, EMBEDDER, v.astype("<f4").tobytes()) for i, v in enumerate(x)])
    conn.execute("COMMIT")
    ensure_indexes(paths, conn, ("face",))
    return paths, conn


def _run_child(case, mode: str, seed: int, kill_after: float | None) -> int:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(case), mode, str(seed), EMBEDDER],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-3000:]
        if kill_after is not None:
            time.sleep(kill_after)
            proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _check_recovered(paths, conn) -> tuple[str, str | None]:
    """Open the case as search does; the face index must hold exactly the database's faces."""
    rows = conn.execute("SELECT face_id, embedding FROM faces ORDER BY face_id").fetchall()
    handle = ensure_indexes(paths, conn, ("face",))["face"]
    ids = np.array([r[0] for r in rows])
    assert len(handle.index) == len(rows)
    np.testing.assert_array_equal(np.sort(handle.index.ids()), ids)
    probe = np.random.default_rng(len(rows)).choice(len(rows), 20, replace=False)
    vectors = np.stack([np.frombuffer(rows[i][1], "<f4") for i in probe])
    np.testing.assert_array_equal(handle.index.search(vectors, 1)[1][:, 0], ids[probe])
    # Loading again trusts the (re)built files; verify agrees with the database.
    assert ensure_indexes(paths, conn, ("face",))["face"].status == "loaded"
    face = index_counts(conn, paths.indexes)["face"]
    assert face["status"] == "ok" and face["index"] == face["db"] == len(rows)
    return handle.status, handle.reason


@pytest.mark.parametrize("mode", ["mid_write", "after_index_rename"])
def test_kill_at_the_worst_moments_is_detected_and_rebuilt(tmp_path, mode):
    paths, conn = _make_case(tmp_path / "case")
    generation = ensure_indexes(paths, conn, ("face",))["face"].manifest.generation
    assert _run_child(paths.root, mode, seed=1, kill_after=None) == -signal.SIGKILL
    temps = list(paths.indexes.glob(".*.tmp"))
    before = conn.execute("SELECT count(*) FROM faces").fetchone()[0]
    status, reason = _check_recovered(paths, conn)
    reasons = [p.read_text() for p in (paths.indexes / QUARANTINE_DIR).iterdir() if p.name.endswith("reason.txt")]
    if mode == "mid_write":
        # The child found its index stale (25 new faces), quarantined it, and died writing the new
        # one: no index file at all, so this open builds it; the half-written temp file was ignored.
        assert before == N_FACES + 25 and status == "built" and any("stale" in r for r in reasons)
        assert temps, "the killed write should have left its temp file"
        assert cleanup_temp_files(paths.indexes, older_than_s=0) and not list(paths.indexes.glob(".*.tmp"))
    else:
        # The new index file (25 vectors fewer) sits beside the old manifest: torn, detected by checksum.
        assert before == N_FACES - 25 and status == "rebuilt" and "checksum mismatch" in reason
        assert any("checksum mismatch" in r for r in reasons)
    assert ensure_indexes(paths, conn, ("face",))["face"].manifest.generation > generation


@pytest.mark.slow
def test_random_kills_during_index_saves_never_lose_a_vector(tmp_path):
    paths, conn = _make_case(tmp_path / "case")
    rng = random.Random(20261129)
    outcomes = []
    for round_no in range(6):
        rc = _run_child(paths.root, "loop", seed=round_no, kill_after=rng.uniform(0.2, 2.5))
        assert rc == -signal.SIGKILL
        outcomes.append(_check_recovered(paths, conn))
        cleanup_temp_files(paths.indexes, older_than_s=0)
    assert conn.execute("SELECT count(*) FROM faces").fetchone()[0] > N_FACES   # the child did change the database
    print("outcomes:", outcomes)
