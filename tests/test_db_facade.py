"""One database facade: the UI holds no SQL, and the named queries it calls return what the pages show.

The UI reads and writes the case only through ``vidpipe.store`` (``queries/*``, ``audit``,
``decision_log``); a scan of ``ui/`` fails on any ``.execute()`` call or SQL text. The query
functions are checked on the small case of ``tests/test_ui_support.build_case`` plus the rows
each test adds. Also here: writers outside ``casedb`` use ``casedb.transaction``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sqlite3
from pathlib import Path

import pytest

from tests.test_ui_support import ASTRONAUT_FACE, IMAGES, REPO, SAMPLE, VIDEO, build_case, sha_of
from vidpipe.hashlists.parse import ListEntry
from vidpipe.hashlists.store import import_rows
from vidpipe.people.store import run_clustering
from vidpipe.store import audit
from vidpipe.store.casedb import transaction, utc_now
from vidpipe.store.queries import calibrations, decisions, hits, media, overview, paths, people, review, users

# SQL as this codebase writes it (upper-case keywords), and the unmistakable lower-case shapes.
SQL_PATTERNS = [re.compile(p) for p in (
    r"\bSELECT\b[\s\S]*\bFROM\b",
    r"\bINSERT\s+(OR\s+[A-Z]+\s+)?INTO\b",
    r"\bUPDATE\s+\w+\s+SET\b",
    r"\bDELETE\s+FROM\b",
    r"\b(CREATE|DROP|ALTER)\s+(TEMP\s+|TEMPORARY\s+|UNIQUE\s+)?(TABLE|INDEX|VIEW|TRIGGER)\b",
    r"^\s*(BEGIN(\s+(IMMEDIATE|EXCLUSIVE|DEFERRED))?|COMMIT|ROLLBACK|SAVEPOINT\s+\w+|RELEASE\s+\w+)\s*;?\s*$",
    r"\bPRAGMA\s+\w+",
    r"\bWHERE\s+\w+(\.\w+)?\s*(=|<|>|IN\b|IS\b|LIKE\b)",
)] + [re.compile(p, re.IGNORECASE) for p in (
    r"\bselect\s+[\w.*,\s()]+?\s+from\s+\w+(\s+\w+)?\s+(where|join|order\s+by|group\s+by|limit)\b",
    r"\binsert\s+(or\s+\w+\s+)?into\s+\w+\s*\(",
    r"\bupdate\s+\w+\s+set\s+\w+\s*=",
    r"\bdelete\s+from\s+\w+\s+where\b",
)]
EXECUTE_METHODS = {"execute", "executemany", "executescript"}


def sql_in_source(source: str, name: str = "<source>") -> list[str]:
    """Every database call and SQL string literal in Python ``source``, as ``name:line what``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in EXECUTE_METHODS:
            found.append(f"{name}:{node.lineno} .{node.func.attr}() call")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and any(p.search(node.value) for p in SQL_PATTERNS):
            found.append(f"{name}:{node.lineno} SQL text {node.value[:60]!r}")
    return found


def test_ui_holds_no_sql() -> None:
    files = sorted((REPO / "ui").rglob("*.py"))
    assert len(files) > 20  # the scan sees the whole UI, views included
    found = [hit for f in files for hit in sql_in_source(f.read_text(encoding="utf-8"), str(f.relative_to(REPO)))]
    assert found == [], "SQL in ui/ (move it to a function in vidpipe/store/queries/):\n" + "\n".join(found)


@pytest.mark.parametrize("snippet", [
    'conn.execute(query)',
    'c.executemany(q, rows)',
    'x = "SELECT name FROM users"',
    'x = f"SELECT a FROM t WHERE id IN ({marks})"',
    'x = ("INSERT OR IGNORE INTO t(a) "\n     "VALUES (?)")',
    'x = "UPDATE review_queue SET state=?"',
    'x = "DELETE FROM face_person"',
    'x = "BEGIN IMMEDIATE"',
    'x = "COMMIT"',
    'x = "PRAGMA cache_size"',
    'x = "select name from users where name = ?"',
    'x = "insert into users(name) values (?)"',
])
def test_the_scan_finds_sql(snippet: str) -> None:
    assert sql_in_source(snippet)


@pytest.mark.parametrize("prose", [
    "Select a person from the list", "No faces in this case yet.", "Reveal both pictures before deciding",
    "Begin", "Update settings", "Delete from this case? Not possible: evidence is read-only.",
    "Merge with person", "Where the files came from",
])
def test_the_scan_spares_prose(prose: str) -> None:
    assert sql_in_source(f"x = {prose!r}") == []


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    c = build_case(tmp_path / "case")
    yield c
    c.close()


def _add_path(conn: sqlite3.Connection, sha: str, path: Path) -> None:
    """Another path holding the content ``sha`` (a duplicate copy)."""
    conn.execute("INSERT INTO items(locator, locator_bytes, ref, source_id, fs_kind, size, state, status, sha256, "
                 "first_run, last_run) VALUES (?,?,?,1,'file',1,'hashed',NULL,?,?,?)",
                 (str(path), os.fsencode(path), os.fsencode(path), sha, "r" * 32, "r" * 32))


def test_first_path_is_the_bytewise_smallest_name_whatever_the_insert_order(conn) -> None:
    sha = sha_of(IMAGES[0])
    _add_path(conn, sha, Path("/z/later.jpg"))
    _add_path(conn, sha, Path("/a/first.jpg"))   # inserted last, sorts first
    assert paths.paths_of(conn, sha) == ["/a/first.jpg", str(SAMPLE / IMAGES[0]), "/z/later.jpg"]
    first = conn.execute(f"SELECT {paths.first_path_sql('?')}", (sha,)).fetchone()[0]
    assert first == "/a/first.jpg"
    correlated = dict(conn.execute(f"SELECT m.sha256, {paths.first_path_sql('m.sha256')} FROM media m").fetchall())
    assert correlated[sha] == "/a/first.jpg" and correlated[sha_of(VIDEO)] == str(SAMPLE / VIDEO)
    source = paths.first_source(conn, sha)
    assert (source["label"], source["kind"], bytes(source["ref"])) == ("JPEG", "image", b"/a/first.jpg")
    assert paths.first_source(conn, "0" * 64) is None
    with pytest.raises(ValueError):
        paths.first_path_sql("?", "locator; DROP TABLE items")


def test_media_detail_queries(conn) -> None:
    sha = sha_of(IMAGES[0])
    row = media.find_media(conn, sha)
    assert media.find_media(conn, row["md5"])["sha256"] == sha == media.find_media(conn, row["sha1"])["sha256"]
    assert media.find_media(conn, "f" * 64) is None
    assert tuple(media.media_hashes(conn, sha)) == (row["md5"], row["sha1"], row["size"], "image/jpeg", "image")
    conn.execute("INSERT INTO signals(sha256, signal, value, quality, stage_version, run_id) VALUES "
                 "(?, 'pdq', 'ab', 90, '1', ?), (?, 'phash', 'cd', NULL, '1', ?)", (sha, "r" * 32, sha, "r" * 32))
    assert media.signals_of(conn, sha) == {"pdq": ("ab", 90), "phash": ("cd", None)}
    _add_path(conn, sha, Path("/z/copy.jpg"))
    conn.execute("UPDATE items SET state='hashed', status=NULL WHERE sha256=?", (sha,))
    assert media.path_statuses(conn, sha) == [
        {"locator": str(SAMPLE / IMAGES[0]), "status": "ok", "reason": None},
        {"locator": "/z/copy.jpg", "status": "skipped", "reason": "duplicate_content"}]
    faces = media.faces_of_media(conn, sha)
    assert [(f["face_index"], (f["x1"], f["y1"], f["x2"], f["y2"])) for f in faces] == [(0, ASTRONAUT_FACE)]
    assert media.still_faces(conn, sha) == [(faces[0]["face_id"], ASTRONAUT_FACE)]
    assert media.face_box(conn, faces[0]["face_id"]) == ASTRONAUT_FACE and media.face_box(conn, 999) is None
    video = sha_of(VIDEO)
    conn.executemany("INSERT INTO frames(sha256, time_s, frame_index, shot_id, reason) VALUES (?,?,?,?,?)",
                     [(video, t / 2, t, t // 4, "interval") for t in range(15, -1, -1)])
    frames = media.keyframes(conn, video, limit=12)
    assert [f["time_s"] for f in frames] == [t / 2 for t in range(12)]


def test_overview_queries(conn) -> None:
    other = sha_of(IMAGES[1])
    conn.execute("UPDATE media SET exif=? WHERE sha256=?", (json.dumps(
        {"make": "Nikon", "model": "D3", "serial": "42", "datetime_original": "2020:01:02 10:11:12",
         "gps": {"lat": -22.90681, "lon": -43.17291}}), other))
    assert [dict(r) for r in overview.camera_rows(conn)] == [
        {"make": "Canon", "model": "", "serial": "", "items": 1}, {"make": "Nikon", "model": "D3", "serial": "42",
                                                                   "items": 1}]
    assert sorted((h["hour"], h["n"]) for h in overview.capture_hours(conn) if h["hour"]) == [
        ("2020:01:02 10:00:00", 1)]
    places = overview.gps_places(conn, limit=10)
    assert [(p["lat"], p["lon"], p["n"]) for p in places] == [(-22.9068, -43.1729, 2)]
    assert overview.face_count(conn) == 1 and overview.decision_count(conn) == 0


def test_people_queries_after_a_clustering(conn) -> None:
    assert people.latest_clustering(conn) is None and people.person_sizes(conn) == []
    sha = sha_of(IMAGES[0])
    _add_path(conn, sha, Path("/a/first.jpg"))
    run_clustering(conn, threshold=0.5)
    last = people.latest_clustering(conn)
    assert (last["faces"], last["persons"], json.loads(last["threshold_source"])) == (1, 1, {"source": "command line"})
    (person,) = people.person_sizes(conn)
    assert (person["faces"], person["files"]) == (1, 1)
    face_id = person["person_id"]
    assert list(people.faces_by_id(conn, [face_id, 999])) == [face_id] and people.faces_by_id(conn, []) == {}
    (member,) = people.person_members(conn, face_id)
    assert (member["face_id"], member["sha256"], member["path"]) == (face_id, sha, "/a/first.jpg")


def test_run_clustering_leaves_nothing_behind_when_storing_fails(conn) -> None:
    conn.execute("CREATE TEMP TRIGGER refuse BEFORE INSERT ON face_person BEGIN SELECT RAISE(ABORT, 'disk full'); "
                 "END")
    with pytest.raises(sqlite3.IntegrityError):
        run_clustering(conn, threshold=0.5)
    # No half-written clustering, and no transaction left open on the connection.
    assert not conn.in_transaction
    assert people.latest_clustering(conn) is None


def test_hashlist_import_joins_the_callers_transaction(conn, tmp_path: Path) -> None:
    entry = ListEntry("known", "A", sha256=sha_of(IMAGES[0]))
    with pytest.raises(RuntimeError), transaction(conn):
        import_rows(conn, [entry], source_path=tmp_path / "l.csv", source_sha256="1" * 64, negative=False)
        raise RuntimeError("the caller's next write fails")
    assert hits.hash_lists(conn) == []  # rolled back with the caller's work
    done = import_rows(conn, [entry], source_path=tmp_path / "l.csv", source_sha256="1" * 64, negative=False)
    assert done["imported"] == 1 and [r["entries"] for r in hits.hash_lists(conn)] == [1]


def test_hit_queries(conn) -> None:
    now = utc_now()
    conn.execute("INSERT INTO hashlists(list_id, name, negative, source_path, source_sha256, imported_utc, entries) "
                 "VALUES (1, 'known', 0, '/l.csv', 'a', ?, 2), (2, 'fp', 1, '/n.csv', 'b', ?, 1)", (now, now))
    a, b = sha_of(IMAGES[0]), sha_of(IMAGES[1])
    conn.execute("INSERT INTO hashlist_hits(sha256, list_id, category, match, distance, suppressed) VALUES "
                 "(?, 1, 'A', 'pdq', 12, 0), (?, 1, 'B', 'sha256', 0, 1), (?, 2, NULL, 'sha256', 0, 0)", (a, b, b))
    _add_path(conn, a, Path("/a/first.jpg"))
    assert [r["name"] for r in hits.hash_lists(conn)] == ["known", "fp"]
    assert [dict(r) for r in hits.positive_hits(conn)] == [
        {"sha256": a, "list": "known", "category": "A", "match": "pdq", "distance": 12, "path": "/a/first.jpg"}]
    assert hits.suppressed_hit_count(conn) == 1


def test_calibrations_in_use_first_then_newest(conn) -> None:
    conn.executemany("INSERT INTO calibrations(calibration_id, kind, threshold, target, created_utc, active) "
                     "VALUES (?, 'face', ?, 'FAR=0.001', ?, ?)",
                     [(1, 0.5, utc_now(), 0), (2, 0.6, utc_now(), 1), (3, 0.7, utc_now(), 0)])
    assert [c["calibration_id"] for c in calibrations.all_calibrations(conn)] == [2, 3, 1]


def test_account_rows(conn) -> None:
    user_id = users.insert_account(conn, "Eve", "analyst", "scrypt$x")
    with pytest.raises(sqlite3.IntegrityError):
        users.insert_account(conn, "eve", "analyst", "scrypt$y")  # names are case-insensitive
    assert dict(users.account_by_id(conn, user_id)) == {"user_id": user_id, "name": "Eve", "role": "analyst",
                                                        "disabled": 0}
    assert users.set_account_disabled(conn, user_id, True) and not users.set_account_disabled(conn, 999, True)
    assert users.account_by_id(conn, user_id)["disabled"] == 1
    listed = users.account_list(conn)
    assert [u["name"] for u in listed] == sorted(u["name"] for u in listed) and "password_hash" not in listed[0]
    assert {r["name"] for r in users.account_rows(conn)} >= {"Eve", "admin"}
    assert users.prefs_row(conn, user_id) is None
    users.save_prefs_row(conn, user_id, 0.08, 30, 10, 40)
    users.save_prefs_row(conn, user_id, 0.12, 0, 0, 0)   # a second save replaces the first
    assert users.prefs_row(conn, user_id) == (0.12, 0, 0, 0)
    key = users.name_hmac_key(conn)
    assert len(key) == users.NAME_HMAC_KEY_BYTES and users.name_hmac_key(conn) == key


def _queue_values(key: str, score: float) -> dict:
    sha = sha_of(IMAGES[0])
    return {"item_key": key, "query_sha256": sha, "query_path": "/q.jpg", "query_label": "JPEG",
            "query_kind": "image", "query_face": 0, "query_box": "[1, 2, 3, 4]", "query_face_id": None,
            "mode": "face", "media_sha256": sha, "media_path": str(SAMPLE / IMAGES[0]), "kind": "image",
            "video_time_s": None, "box": None, "face_id": None, "score": score, "threshold": 0.5, "rank": 1,
            "above_threshold": 1, "sent_by": "analyst", "sent_utc": utc_now()}


def test_review_queue_rows(conn) -> None:
    first = review.insert_queue_item(conn, _queue_values("face:a", 0.9))
    second = review.insert_queue_item(conn, _queue_values("face:b", 0.8))
    assert review.insert_queue_item(conn, _queue_values("face:a", 0.7)) is None  # already open
    with pytest.raises(ValueError):
        review.insert_queue_item(conn, {**_queue_values("face:c", 0.1), "state": "done"})
    assert review.open_item_ids(conn) == {"face:a": first, "face:b": second}
    assert review.queue_row(conn, first)["query_box"] == "[1, 2, 3, 4]" and review.queue_row(conn, 999) is None
    review.set_claim(conn, first, "reviewer")
    review.set_claim(conn, second, "reviewer")   # one claim per reviewer: the first is released
    assert [(r["item_id"], r["claimed_by"]) for r in sorted(review.open_queue_rows(conn), key=lambda r: r[0])] == [
        (first, None), (second, "reviewer")]
    review.record_skip(conn, second, "reviewer")
    assert review.skipped_item_ids(conn, "reviewer") == {second} and review.skipped_item_ids(conn, "admin") == set()
    assert review.queue_row(conn, second)["claimed_by"] is None
    review.close_queue_item(conn, first, 7, "reviewer")
    done = review.queue_row(conn, first)
    assert (done["state"], done["decision_id"], done["done_by"]) == ("done", 7, "reviewer")
    review.close_queue_item(conn, first, 8, "admin")   # a closed item keeps the decision that closed it
    assert review.queue_row(conn, first)["decision_id"] == 7
    assert review.insert_queue_item(conn, _queue_values("face:a", 0.7)) is not None  # sent again once decided


def test_reveal_and_overrule_rows(conn) -> None:
    sha = sha_of(IMAGES[0])
    assert not decisions.has_revealed(conn, "reviewer", sha)
    audit.append(conn, "reviewer", "reveal", sha, {})
    assert decisions.has_revealed(conn, "reviewer", sha) and not decisions.has_revealed(conn, "admin", sha)
    assert decisions.overruled_by(conn) == {}
