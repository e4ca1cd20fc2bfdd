"""`vidpipe retention remove`: derived rows, index vectors and thumbnails go; a tombstone and an
audit entry stay; accounting and `vidpipe verify` still hold; evidence files are never touched.

The first tests use a synthetic case database (rows inserted directly, real evidence files on
disk so that verify can re-hash them); the last one ingests real images end to end (slow).
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from conftest import REPO, conservation_holds, export_records, run_cli, run_json

from indexer.store import QUARANTINE_DIR, index_path
from vidpipe.cli.main import main
from vidpipe.reporting.verify import verify_case
from vidpipe.search.build import ensure_indexes, index_counts
from vidpipe.sources.base import ItemRef
from vidpipe.store.audit import chain_status
from vidpipe.store.casedb import open_case
from vidpipe.store.retention import REMOVED_REASON

EMBEDDER = "facenet-test@0123456789abcdef"
SCENER = "scene-test@0123456789abcdef"
RUN = "run-1"


def _unit(rng, n, dim):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _make_case(root, n_media=30, faces_per_media=3, seed=7):
    """A case whose every derived table has rows; evidence files exist under root/evidence."""
    rng = np.random.default_rng(seed)
    paths, conn = open_case(root / "case", create=True)
    evidence = root / "evidence"
    evidence.mkdir()
    conn.execute("INSERT INTO runs(run_id, command, started_utc, status, argv, tool_version, libraries, config, "
                 "config_hash) VALUES (?, 'ingest', '2026-01-01T00:00:00Z', 'completed', '[]', 't', '{}', '{}', 'h')",
                 (RUN,))
    conn.execute("INSERT INTO sources(source_id, root, root_bytes, added_run) VALUES (1, ?, ?, ?)",
                 (str(evidence), str(evidence).encode(), RUN))
    for key, role in ((EMBEDDER, "face_embedder"), ("det@0", "face_detector"), (SCENER, "scene_embedder")):
        conn.execute("INSERT INTO models(model_key, name, role, weights_sha256, info, first_run) VALUES (?,?,?,?,?,?)",
                     (key, key, role, "0" * 64, "{}", RUN))
    conn.execute("INSERT INTO hashlists(list_id, name, source_path, source_sha256, imported_utc) "
                 "VALUES (1, 'known', '/x.csv', 'abc', '2026-01-01T00:00:00Z')")
    shas = []
    for m in range(n_media):
        data = f"evidence file {m}".encode()
        sha = hashlib.sha256(data).hexdigest()
        shas.append(sha)
        names = [f"f{m:03d}.jpg"] + ([f"copy_of_{m:03d}.jpg"] if m % 5 == 0 else [])
        for name in names:  # every fifth content has a duplicate path
            (evidence / name).write_bytes(data)
            ref = ItemRef(str(evidence / name).encode())
            conn.execute("INSERT INTO items(locator, locator_bytes, ref, source_id, fs_kind, size, state, sha256, "
                         "first_run, last_run) VALUES (?,?,?,1,'file',?, 'hashed', ?, ?, ?)",
                         (ref.locator, ref.fs_path, ref.to_blob(), len(data), sha, RUN, RUN))
        conn.execute("INSERT INTO media(sha256, md5, sha1, size, mime, label, kind, state, status, first_run) "
                     "VALUES (?, ?, ?, ?, 'image/jpeg', 'JPEG', 'image', 'done', 'ok', ?)",
                     (sha, hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(), len(data), RUN))
        conn.execute("INSERT INTO signals VALUES (?, 'pdq', ?, 100, 'v1', ?)",
                     (sha, rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex(), RUN))
        conn.execute("INSERT INTO signals VALUES (?, 'phash', ?, NULL, 'v1', ?)",
                     (sha, rng.integers(0, 256, 8, dtype=np.uint8).tobytes().hex(), RUN))
        conn.execute("INSERT INTO stages VALUES (?, 'faces', 'v1', 'ok', NULL, ?, '2026-01-01T00:00:00Z')", (sha, RUN))
        for f in range(faces_per_media):
            conn.execute("INSERT INTO faces(sha256, face_index, x1, y1, x2, y2, det_score, detector, embedder, "
                         "embedding, run_id) VALUES (?,?,0,0,10,10,0.99,'det@0',?,?,?)",
                         (sha, f, EMBEDDER, _unit(rng, 1, 512)[0].astype("<f4").tobytes(), RUN))
        conn.execute("INSERT INTO scenes(sha256, embedder, embedding, masked, run_id) VALUES (?,?,?, '[]', ?)",
                     (sha, SCENER, _unit(rng, 1, 1280)[0].astype("<f4").tobytes(), RUN))
        conn.execute("INSERT INTO frames VALUES (?, 0.0, 0, 0, 'shot_start', NULL, NULL, NULL)", (sha,))
        conn.execute("INSERT INTO vpdq VALUES (?, 0, 100, ?, 0.0)", (sha, "0" * 64))
        conn.execute("INSERT INTO hashlist_hits VALUES (?, 1, 'CAT1', 'md5', 0, 0)", (sha,))
        conn.execute("INSERT INTO places VALUES (?, 'Hotel X', NULL, '/labels.csv', 'abc', ?)", (sha, RUN))
    face_ids = [r[0] for r in conn.execute("SELECT face_id FROM faces ORDER BY face_id")]
    for fid in face_ids:
        conn.execute("INSERT INTO face_person VALUES (?, ?, 1)", (fid, face_ids[0]))
    conn.execute("INSERT INTO face_constraints VALUES (?, ?, 'must_link', 'rita', NULL, '2026-01-01T00:00:00Z')",
                 (face_ids[0], face_ids[5]))   # content 0 with content 1
    # A decision as the UI records it: the row and its audit entry (bound: `vidpipe verify` checks them).
    from vidpipe.store.casedb import transaction
    from vidpipe.store.decision_log import append_decision

    with transaction(conn):
        append_decision(conn, {"query_sha256": "f" * 64, "query_face": None, "mode": "face", "media_sha256": shas[1],
                               "face_id": face_ids[3], "video_time_s": None, "score": 0.8, "threshold": None,
                               "decision": "confirmed", "reason": None, "reviewer": "rita",
                               "decided_utc": "2026-01-02T00:00:00Z"})
    return paths, conn, shas


def _db_ids(conn, sql):
    return {r[0] for r in conn.execute(sql)}


def _assert_indexes_match_db(paths, conn):
    handles = ensure_indexes(paths, conn)
    assert all(h.status == "loaded" for h in handles.values()), {n: h.status for n, h in handles.items()}
    assert set(handles["face"].index.ids().tolist()) == _db_ids(conn, "SELECT face_id FROM faces")
    assert set(handles["scene"].index.ids().tolist()) == _db_ids(conn, "SELECT scene_id FROM scenes")
    assert set(handles["pdq"].index.ids().tolist()) == _db_ids(
        conn, "SELECT m.rowid FROM media m JOIN signals s ON s.sha256 = m.sha256 AND s.signal = 'pdq'")
    assert set(handles["phash"].index.ids().tolist()) == _db_ids(conn, "SELECT rowid FROM media")
    return handles


@pytest.mark.parametrize("float_kind", ["auto", "ivf-flat-ip", "hnsw-ip"])
def test_removal_deletes_rows_vectors_thumbs_and_keeps_a_tombstone(tmp_path, monkeypatch, float_kind):
    monkeypatch.setenv("VIDPIPE_FLOAT_INDEX", float_kind)
    paths, conn, shas = _make_case(tmp_path)
    handles = ensure_indexes(paths, conn)
    assert handles["face"].index.kind == ("flat-ip" if float_kind == "auto" else float_kind)
    gone = [shas[0], shas[1]]
    face_vec = {r[0]: np.frombuffer(r[1], "<f4") for r in conn.execute(
        f"SELECT face_id, embedding FROM faces WHERE sha256 IN ('{gone[0]}', '{gone[1]}')")}
    gone_rowids = _db_ids(conn, f"SELECT rowid FROM media WHERE sha256 IN ('{gone[0]}', '{gone[1]}')")
    pdq_codes = [bytes.fromhex(r[0]) for r in conn.execute(
        f"SELECT value FROM signals WHERE signal = 'pdq' AND sha256 IN ('{gone[0]}', '{gone[1]}')")]
    # Before: each removed face finds itself, each removed PDQ code its media row.
    face_ids = np.array(sorted(face_vec))
    assert set(handles["face"].index.search(np.stack([face_vec[i] for i in face_ids]), 1)[1][:, 0]) == set(face_ids)
    paths.thumbs.mkdir()
    for name in (f"{gone[0]}.jpg", f"{gone[0]}.json", f"{gone[1]}_t1500_c1_2_3_4.jpg", f"{shas[2]}.jpg"):
        (paths.thumbs / name).write_bytes(b"x")
    qdir = paths.indexes / QUARANTINE_DIR
    qdir.mkdir()
    (qdir / "20260101T000000Z.face.faiss").write_bytes(b"old copy")
    evidence_before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "evidence").iterdir()}
    audit_before = chain_status(conn)["entries"]

    rc = main(["retention", "remove", "--case", str(paths.root), "--sha256", gone[0], gone[1].upper(),
               "--reason", "court order 12/2026", "--user", "rita", "--json"])
    assert rc == 0
    # Derived rows are gone, unrelated rows stay.
    for table in ("signals", "stages", "faces", "frames", "vpdq", "hashlist_hits", "scenes", "places", "media"):
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE sha256 IN (?, ?)", gone).fetchone()[0] == 0
        per_media = {"faces": 3, "signals": 2}.get(table, 1)
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 28 * per_media
    assert conn.execute("SELECT count(*) FROM face_person").fetchone()[0] == 28 * 3
    assert conn.execute("SELECT count(*) FROM face_constraints").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0
    # Paths stay, as final skipped, and accounting still holds.
    removed_items = conn.execute("SELECT status, reason, sha256 FROM items WHERE reason = ?", (REMOVED_REASON,)).fetchall()
    assert len(removed_items) == 3 and {tuple(r) for r in removed_items} == {("skipped", REMOVED_REASON, None)}
    statuses = conn.execute("SELECT count(*), sum(status IS NULL) FROM item_status").fetchone()
    assert statuses[0] == 36 and statuses[1] == 0
    # Tombstones, with the archived review records, and a hash-chained audit entry each.
    stones = conn.execute("SELECT * FROM retention_tombstones ORDER BY tombstone_id").fetchall()
    assert [s["sha256"] for s in stones] == gone
    assert {s["removed_by"] for s in stones} == {"rita"} and {s["reason"] for s in stones} == {"court order 12/2026"}
    detail = json.loads(stones[1]["detail"])
    assert detail["review_records"]["decisions"][0]["reviewer"] == "rita"
    assert detail["rows_deleted"]["faces"] == 3 and len(json.loads(stones[0]["detail"])["paths"]) == 2
    status = chain_status(conn)
    assert status["ok"] and status["entries"] == audit_before + 2
    assert conn.execute("SELECT action, actor, target FROM audit ORDER BY seq DESC LIMIT 1").fetchone()[:] == (
        "retention_remove", "rita", gone[1])
    # Vectors are gone from every index, and each index equals the database rows again.
    after = _assert_indexes_match_db(paths, conn)
    found = after["face"].index.search(np.stack([face_vec[i] for i in face_ids]), 10)[1]
    assert not np.isin(found, face_ids).any()
    for code in pdq_codes:
        hits = after["pdq"].index.range_search(np.frombuffer(code, np.uint8)[None, :], 31)[0][1]
        assert not set(hits.tolist()) & gone_rowids
    assert after["face"].index.kind == handles["face"].index.kind
    # Thumbnails and quarantined index copies of the content are deleted; other files stay.
    assert sorted(p.name for p in paths.thumbs.iterdir()) == [f"{shas[2]}.jpg"]
    assert not list(qdir.glob("*.faiss"))
    # The evidence was not touched.
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "evidence").iterdir()} \
        == evidence_before
    result = verify_case(conn, workers=1, rehash=True, indexes_dir=paths.indexes)
    assert result["ok"], json.dumps(result["checks"], indent=1, default=str)
    assert result["checks"]["retention"]["tombstones"] == 2
    assert result["checks"]["evidence_hashes"]["checked"] == 33


def test_removal_is_idempotent_and_refuses_unknown_content(tmp_path, capsys):
    paths, conn, shas = _make_case(tmp_path, n_media=6)
    args = ["retention", "remove", "--case", str(paths.root), "--reason", "r", "--user", "u", "--json"]
    assert main([*args, "--sha256", shas[3]]) == 0
    first = json.loads(capsys.readouterr().out)
    assert [r["sha256"] for r in first["removed"]] == [shas[3]] and first["indexes"]["face"]["removed"] == 3
    assert main([*args, "--sha256", shas[3]]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["removed"] == [] and again["already_removed"][0]["sha256"] == shas[3]
    assert conn.execute("SELECT count(*) FROM retention_tombstones").fetchone()[0] == 1
    assert main([*args, "--sha256", "ab" * 32]) == 2       # not in the case: usage error, nothing changed
    assert main([*args, "--sha256", "xyz"]) == 2
    assert conn.execute("SELECT count(*) FROM media").fetchone()[0] == 5


def test_verify_flags_leftovers_of_an_unfinished_removal(tmp_path):
    paths, conn, shas = _make_case(tmp_path, n_media=6)
    ensure_indexes(paths, conn)
    assert main(["retention", "remove", "--case", str(paths.root), "--sha256", shas[2], "--reason", "r",
                 "--user", "u"]) == 0
    assert verify_case(conn, rehash=False, indexes_dir=paths.indexes)["ok"]
    # A thumbnail made after the removal, and an index file older than it in quarantine.
    paths.thumbs.mkdir(exist_ok=True)
    (paths.thumbs / f"{shas[2]}.jpg").write_bytes(b"x")
    stale_copy = paths.indexes / QUARANTINE_DIR / "20200101T000000Z.face.faiss"
    stale_copy.parent.mkdir(exist_ok=True)
    shutil.copy(index_path(paths.indexes, "face"), stale_copy)
    import os

    os.utime(stale_copy, (1_600_000_000, 1_600_000_000))
    check = verify_case(conn, rehash=False, indexes_dir=paths.indexes)["checks"]["retention"]
    assert not check["ok"] and len(check["problems"]) == 2
    # Running the removal again finishes the clean-up.
    assert main(["retention", "remove", "--case", str(paths.root), "--sha256", shas[2], "--reason", "r",
                 "--user", "u"]) == 0
    assert verify_case(conn, rehash=False, indexes_dir=paths.indexes)["ok"]
    counts = index_counts(conn, paths.indexes)
    assert all(c["status"] == "ok" and c["index"] == c["db"] for c in counts.values())


@pytest.mark.slow
def test_removal_end_to_end_on_ingested_images(tmp_path):
    """Real ingest (faces on): near-dup and face search stop returning removed content; a re-run
    of the ingest does not bring it back; export, verify and the accounting hold."""
    src = tmp_path / "evidence"
    src.mkdir()
    for rel in ("near_dups/rocket.jpg", "near_dups/rocket_crop2.jpg", "near_dups/rocket_q25.jpg",
                "photos/astronaut.jpg", "photos/coffee.jpg"):
        shutil.copy(REPO / "sample_media" / rel, src / rel.split("/")[1])
    case = tmp_path / "case"
    summary = run_json("ingest", str(src), "--case", str(case), "--workers", "2", "--no-scenes", "--json")
    assert summary["status"] == "completed" and summary["faces"] >= 1
    sha = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()}
    query = REPO / "sample_media" / "near_dups" / "rocket_half.jpg"
    before = run_json("search", "--case", str(case), "--query", str(query), "--mode", "near-dup", "--json")
    assert sha["rocket_crop2.jpg"] in {r["media"]["sha256"] for r in before["results"]}
    face_query = REPO / "sample_media" / "photos" / "astronaut.jpg"
    faces_before = run_json("search", "--case", str(case), "--query", str(face_query), "--mode", "face", "--json")
    assert sha["astronaut.jpg"] in {r["media"]["sha256"] for r in faces_before["results"]}

    removed = run_json("retention", "remove", "--case", str(case), "--sha256", sha["rocket_crop2.jpg"],
                       sha["astronaut.jpg"], "--reason", "retention period ended", "--user", "rita", "--json")
    assert len(removed["removed"]) == 2 and removed["indexes"]["face"]["removed"] >= 1

    after = run_json("search", "--case", str(case), "--query", str(query), "--mode", "near-dup", "--json")
    assert sha["rocket_crop2.jpg"] not in {r["media"]["sha256"] for r in after["results"]}
    assert sha["rocket.jpg"] in {r["media"]["sha256"] for r in after["results"]}
    faces_after = run_json("search", "--case", str(case), "--query", str(face_query), "--mode", "face", "--json")
    assert sha["astronaut.jpg"] not in {r["media"]["sha256"] for r in faces_after["results"]}
    verify = run_json("verify", "--case", str(case), "--json", check=False)
    assert verify["ok"], json.dumps(verify["checks"], default=str)[:3000]
    records = export_records(case)
    gone = [r for r in records if r["reason"] == REMOVED_REASON]
    assert len(gone) == 2 and all(r["sha256"] is None and r["status"] == "skipped" for r in gone)
    assert not {sha["rocket_crop2.jpg"], sha["astronaut.jpg"]} & {r["sha256"] for r in records}
    again = run_json("ingest", str(src), "--case", str(case), "--workers", "2", "--no-scenes", "--json")
    assert conservation_holds(again) and again["discovered"] == 5
    assert again["skipped"].get(REMOVED_REASON) == 2
    assert run_cli("verify", "--case", str(case), "--no-rehash").returncode == 0
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()} == sha
    # A new copy of removed content under another name is recorded, never processed again.
    shutil.copy(src / "astronaut.jpg", src / "astronaut_copy.jpg")
    third = run_json("ingest", str(src), "--case", str(case), "--workers", "2", "--no-scenes", "--json")
    assert conservation_holds(third) and third["discovered"] == 6
    assert third["skipped"].get(REMOVED_REASON) == 3
    assert sha["astronaut.jpg"] not in {r["sha256"] for r in export_records(case)}
    assert run_cli("verify", "--case", str(case), "--no-rehash").returncode == 0
