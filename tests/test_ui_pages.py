"""Streamlit AppTest over every page and role: login gate, role enforcement, audit of actions."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_ui_support import APP, IMAGES, PASSWORD, REPO, ROLES, SAMPLE, fake_search, login, serve_case, texts

import ui
from ui import session
from ui.auth import User, can
from ui.jobs import start_ingest
from ui.session import _AUTH
from vidpipe.store import audit

VIEWS = {"overview": "view", "search": "search", "review": "decide", "media": "view", "exports": "export",
         "audit": "audit", "ingest": "ingest", "users": "manage_users", "people": "view", "hits": "view"}
TITLES = {"overview": "Case overview", "search": "Search", "review": "Review queue", "media": "Media detail",
          "exports": "Exports", "audit": "Audit trail", "ingest": "Ingest evidence", "users": "Users",
          "people": "People", "hits": "Known-hash hits"}


@pytest.fixture
def case(tmp_path, monkeypatch):
    return serve_case(tmp_path / "case", monkeypatch)


@pytest.fixture
def searchable(monkeypatch):
    """Search answered by a fake with the contract's JSON (the real index is tested elsewhere)."""
    import vidpipe.search.api

    monkeypatch.setattr(vidpipe.search.api, "search", fake_search)


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def logged_in(role: str) -> AppTest:
    at = login(app().run(), role)
    assert not at.exception, at.exception
    return at


def actions(db, action: str) -> list[sqlite3.Row]:
    return db.execute("SELECT * FROM audit WHERE action=? ORDER BY seq", (action,)).fetchall()


def test_unauthenticated_session_sees_only_the_login(case, db):
    at = app().run()
    assert not at.exception
    assert [w.label for w in at.text_input] == ["User name", "Password"]
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.sidebar.children and not at.file_uploader and not at.image and not at.dataframe
    for view in VIEWS:  # no other page is registered for this session
        with pytest.raises(ValueError, match="navigation page"):
            at.switch_page(f"views/{view}.py")


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_a_view_run_without_login_shows_nothing(case, view):
    at = AppTest.from_file(str(REPO / "ui" / "views" / f"{view}.py"), default_timeout=60).run()
    assert [w.value for w in at.warning] == ["Please log in."]
    assert not at.dataframe and not at.file_uploader and not at.image and not at.button and not at.metric


def test_wrong_password_is_refused_logged_and_locks_out(case, db):
    at = app().run()
    for _ in range(5):
        at = login(at, "reviewer", "wrong password!")
        assert "wrong password" in texts(at)
    at = login(at, "reviewer", PASSWORD)  # right password, but this client must wait a while
    assert "Too many failed attempts" in texts(at)
    assert _AUTH not in at.session_state
    reasons = [json.loads(r["detail"])["reason"] for r in actions(db, "login_denied")]
    assert reasons == ["bad_password"] * 5 + ["throttled_client"]
    assert audit.verify_chain(db) is None


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_views(case, db, role):
    at = logged_in(role)
    assert actions(db, "login")[-1]["actor"] == role
    assert f"**{role}** · {role}" in [m.value for m in at.sidebar.markdown]
    for view, permission in VIEWS.items():
        if can(role, permission):
            at.switch_page(f"views/{view}.py").run()
            assert not at.exception, (view, at.exception)
            assert TITLES[view] in [t.value for t in at.title], view
        else:
            with pytest.raises(ValueError):
                at.switch_page(f"views/{view}.py")


@pytest.mark.parametrize("role,view", [(r, v) for r in ROLES for v, p in VIEWS.items() if not can(r, p)])
def test_views_refuse_roles_even_when_run_directly(case, db, role, view):
    """The view itself checks the role (not only the navigation), and logs the denial."""
    at = AppTest.from_file(str(REPO / "ui" / "views" / f"{view}.py"), default_timeout=60)
    user_id = db.execute("SELECT user_id FROM users WHERE name=?", (role,)).fetchone()[0]
    for key, value in session.grant(User(user_id, role, role)).items():  # a live login, as the login page makes
        at.session_state[key] = value
    at.run()
    assert [e.value for e in at.error] == [f"Your role ({role}) may not use this page."]
    assert not at.file_uploader and not at.text_area and not at.dataframe
    assert actions(db, "denied")[-1]["target"] == VIEWS[view]


def test_reviewer_cannot_start_ingest_or_manage_users(case, db):
    from ui.auth import User

    reviewer = User(3, "reviewer", "reviewer")
    proc, _, error = start_ingest(db, case, reviewer, [str(SAMPLE / "photos")], 1, False)
    assert proc is None and "may not start an ingest" in error
    at = logged_in("reviewer")
    for view in ("ingest", "users"):
        with pytest.raises(ValueError):
            at.switch_page(f"views/{view}.py")
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    assert db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 4


def test_admin_adds_a_user_and_it_is_audited(case, db):
    at = logged_in("admin").switch_page("views/users.py").run()
    at.text_input[0].input("frank")
    at.selectbox[0].select("analyst")
    at.text_input[1].input("frank's long password")
    at.text_input[2].input("frank's long password")
    button(at, "Add user").click()
    at.run()
    assert "Added frank (analyst)." in texts(at)
    assert db.execute("SELECT role FROM users WHERE name='frank'").fetchone()[0] == "analyst"
    assert actions(db, "user_add")[-1]["actor"] == "admin"


def test_search_reveal_queue_and_decide(case, db, searchable):
    at = logged_in("reviewer").switch_page("views/search.py").run()
    at.selectbox[0].select("face")
    at.file_uploader[0].upload("query.jpg", (SAMPLE / IMAGES[0]).read_bytes(), "image/jpeg")
    button(at, "Search").click()
    at.run()
    assert not at.exception, at.exception
    page = texts(at)
    assert "3 results" in page and "0.550" in page and "#1 · score 0.910 (✔ above)" in page
    assert "t=2.00s" in page and "(below)" in page
    assert len(at.image) == 4  # the query and three candidates, all blurred
    search = actions(db, "search")[-1]
    assert search["actor"] == "reviewer" and json.loads(search["detail"])["above_threshold"] == 2
    assert list((case / "queries").iterdir())[0].name == f"{search['target']}.jpeg"

    reveal = next(b for b in at.button if b.label == "Reveal" and b.key.startswith("reveal_r1q0_" + fake_sha(1)))
    reveal.click()
    at.run()
    assert [m.value for m in at.sidebar.metric] == ["1"]
    assert actions(db, "reveal")[-1]["target"] == fake_sha(1)

    next(b for b in at.button if b.label.startswith("Send the 2 results")).click()
    at.run()
    assert "2 candidate(s) added to the review queue." in texts(at)
    at.switch_page("views/review.py").run()
    assert not at.exception, at.exception
    assert "score **0.9100** · threshold 0.5500 — above" in texts(at)
    button(at, "Reveal both").click()  # deciding without it is refused: tests/test_ui_queue.py
    at.run()
    at.text_area[0].input("   ")
    button(at, "Confirm — same").click()  # without a reason
    at.run()
    assert "a reason is required" in texts(at)
    assert db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0
    at.text_area[0].input("same scar above the left eyebrow")
    button(at, "Confirm — same").click()
    at.run()
    assert "Decision 1 recorded: confirmed." in texts(at)
    row = db.execute("SELECT * FROM decisions").fetchone()
    assert (row["decision"], row["reviewer"], row["score"], row["threshold"]) == ("confirmed", "reviewer", 0.91, 0.55)
    assert row["media_sha256"] == fake_sha(1) and row["face_id"] == 1 and row["query_sha256"] == search["target"]
    entry = actions(db, "decision")[-1]
    assert json.loads(entry["detail"])["decision_id"] == 1 and entry["target"] == fake_sha(1)
    assert audit.verify_chain(db) is None
    # The second queued candidate (the video frame) is next, in a fresh form; the first is gone.
    assert "video time 2.00 s" in texts(at)
    assert at.text_area[0].value == ""


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def fake_sha(rank: int) -> str:
    return fake_search(None, "q", "face")["results"][rank - 1]["media"]["sha256"]


def test_search_page_explains_when_search_is_missing(case, monkeypatch):
    monkeypatch.setattr("ui.search_backend.search_unavailable", lambda: "Search is not available: test")
    at = logged_in("analyst").switch_page("views/search.py").run()
    assert "Search is not available: test" in [w.value for w in at.warning]
    assert not at.file_uploader


def test_analyst_cannot_decide(case, db):
    from ui.auth import User
    from ui.decisions import candidates_from_search, record_decision

    cand = candidates_from_search(fake_search(case, "q.jpg", "face"),
                                  {"sha256": "0" * 64, "path": "q.jpg", "label": "JPEG", "kind": "image"})[0]
    decision_id, error = record_decision(db, User(2, "analyst", "analyst"), cand, "confirmed", "looks the same")
    assert decision_id is None and "may not record decisions" in error
    assert db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0


def test_media_detail_shows_paths_hashes_exif_and_gps(case, db):
    at = logged_in("analyst").switch_page("views/media.py").run()
    at.text_input[0].input(fake_sha(1)).run()
    page = texts(at)
    assert "-22.906800, -43.172900, altitude 11.5 m" in page
    code = "\n".join(c.value for c in at.code)
    assert fake_sha(1) in code and '"make": "Canon"' in code
    paths = at.dataframe[0].value
    assert list(paths["locator"]) == [str(SAMPLE / IMAGES[0])]
    assert len(at.image) == 1 and [b.label for b in at.main.button] == ["Reveal", "Zoom"]  # zoom: test_ui_charts


def test_idle_session_is_logged_out(case, db):
    at = logged_in("examiner")
    at.session_state[_AUTH] = {**at.session_state[_AUTH], "last_active": time.time() - 3600}
    at.run()
    assert [w.label for w in at.text_input] == ["User name", "Password"]
    assert "logged out after a period of inactivity" in texts(at)
    assert json.loads(actions(db, "logout")[-1]["detail"])["reason"] == "idle_timeout"


def test_overview_counts_and_failures(case):
    at = logged_in("analyst")
    assert [(m.label, m.value) for m in at.metric][:4] == [("Items", "6"), ("Ok", "5"), ("Partial", "0"),
                                                           ("Failed", "1")]
    failures = at.table[0].value
    assert list(failures["reason"]) == ["decode_error"] and list(failures["items"]) == [1]
    assert list(at.table[1].value["operator"]) == ["tester"]
    assert "the hash chain verifies" in texts(at)


def test_no_streamlit_caches_hold_case_data():
    """Streamlit's caches are shared by every session of the server; the UI must not use them."""
    sources = "\n".join(p.read_text() for p in Path(ui.__file__).parent.rglob("*.py"))
    assert not re.search(r"@st\.(cache|experimental_memo|experimental_singleton)|st\.cache\w*\s*\(", sources)


def test_query_upload_is_capped_and_sniffed(case):
    from ui.search_backend import QUERY_MAX_BYTES, save_query

    jpeg = (SAMPLE / IMAGES[0]).read_bytes()
    assert "larger than 25 MB" in save_query(case, jpeg + b"\0" * QUERY_MAX_BYTES, "face")[1]
    assert "needs a photo" in save_query(case, b"#!/bin/sh\necho hi\n", "face")[1]
    assert "needs a video query" in save_query(case, jpeg, "video")[1]
    query, error = save_query(case, jpeg, "scene")
    assert error is None and query.path.read_bytes() == jpeg and query.path.stat().st_mode & 0o777 == 0o400
    assert save_query(case, jpeg, "face")[0].path == query.path  # kept once, by content
    assert save_query(case, (SAMPLE / "video/clip.mp4").read_bytes(), "video")[0].kind == "video"


def test_names_from_evidence_are_shown_as_text(case, db, searchable, monkeypatch):
    """A file name is evidence: markdown in it must not become a link, an image fetch or a colour."""
    hostile = SAMPLE.parent / "![pwn](http:evil.example) :red[x].jpg"
    db.execute("UPDATE items SET locator=? WHERE sha256=?", (str(hostile), fake_sha(1)))
    db.commit()

    def search_with_hostile_name(*args, **kw):
        result = fake_search(*args, **kw)
        result["results"][0]["media"]["path"] = str(hostile)
        return result

    import vidpipe.search.api

    monkeypatch.setattr(vidpipe.search.api, "search", search_with_hostile_name)
    at = logged_in("reviewer").switch_page("views/search.py").run()
    at.file_uploader[0].upload("query.jpg", (SAMPLE / IMAGES[0]).read_bytes(), "image/jpeg")
    button(at, "Search").click()
    at.run()
    captions = [c.value for c in at.caption]
    assert r"\!\[pwn\]\(http\:evil\.example\) \:red\[x\]\.jpg" in captions
    assert not any("![pwn]" in c for c in captions + [m.value for m in at.markdown])


def test_refused_query_is_shown_and_audited(case, db, searchable):
    at = logged_in("analyst").switch_page("views/search.py").run()
    at.file_uploader[0].upload("query.jpg", b"#!/bin/sh\nrm -rf /\n", "image/jpeg")
    button(at, "Search").click()
    at.run()
    assert any("needs a photo" in e.value for e in at.error)
    assert not at.image and "_vp_search" not in at.session_state
    entry = actions(db, "search_failed")[-1]
    assert entry["actor"] == "analyst" and "needs a photo" in json.loads(entry["detail"])["error"]


def test_people_page_records_not_this_person_as_a_binding_constraint(case, db):
    sha = db.execute("SELECT sha256 FROM media WHERE kind='image' ORDER BY sha256 LIMIT 1 OFFSET 1").fetchone()[0]
    db.execute("INSERT INTO faces(sha256, frame_key, face_index, x1, y1, x2, y2, det_score, detector, embedder, "
               "embedding, run_id) SELECT ?, '', 0, 10, 10, 60, 60, 0.98, detector, embedder, embedding, run_id "
               "FROM faces LIMIT 1", (sha,))
    db.execute("INSERT INTO calibrations(kind, model_key, threshold, target, far, frr, created_utc) "
               "VALUES ('face', 'emb@0', 0.5, 'FAR=0.001', 0.001, 0.02, '2026-11-29T00:00:00Z')")
    db.commit()
    at = logged_in("reviewer")
    at.switch_page("views/people.py").run()
    assert not at.exception, at.exception
    assert "People" in [t.value for t in at.title]
    assert db.execute("SELECT persons FROM clusterings ORDER BY clustering_id DESC").fetchone()[0] == 1
    at.text_input(key="people_reason").input("different ear shape").run()
    assert at.selectbox(key="not_this").value is None  # no face is chosen for the reviewer
    at.selectbox(key="not_this").select(at.selectbox(key="not_this").options[-1]).run()
    at.button(key="do_not_this").click().run()
    assert not at.exception, at.exception
    constraint = db.execute("SELECT kind, reviewer, reason FROM face_constraints").fetchall()
    assert [tuple(c) for c in constraint] == [("cannot_link", "reviewer", "different ear shape")]
    assert actions(db, "not_this_person")[-1]["actor"] == "reviewer"
    assert db.execute("SELECT persons FROM clusterings ORDER BY clustering_id DESC").fetchone()[0] == 2
    assert audit.verify_chain(db) is None


def test_analyst_sees_people_but_cannot_change_them(case, db):
    at = logged_in("analyst")
    at.switch_page("views/people.py").run()
    assert not at.exception, at.exception
    assert not [b for b in at.button if b.key in ("do_not_this", "do_merge", "do_split")]


def test_hash_hits_page_lists_hits_without_images(case, db):
    sha = db.execute("SELECT sha256 FROM media WHERE kind='image' LIMIT 1").fetchone()[0]
    db.execute("INSERT INTO hashlists(list_id, name, negative, source_path, source_sha256, imported_utc, entries) "
               "VALUES (1, 'demo-list', 0, '/x.csv', 'ab', '2026-11-29T00:00:00Z', 1)")
    db.execute("INSERT INTO hashlist_hits(sha256, list_id, category, match, distance, suppressed) "
               "VALUES (?, 1, '2', 'md5', 0, 0)", (sha,))
    db.commit()
    at = logged_in("analyst")
    at.switch_page("views/hits.py").run()
    assert not at.exception, at.exception
    assert "1 hits" in [s.value for s in at.subheader]
    assert not at.get("imgs")


def test_media_detail_shows_a_blurred_keyframe_strip_for_a_video(case, db):
    from test_ui_support import VIDEO, sha_of

    sha = sha_of(VIDEO)
    db.executemany("INSERT INTO frames(sha256, time_s, frame_index, shot_id, reason) VALUES (?,?,?,?,?)",
                   [(sha, 0.0, 0, 0, "shot_start"), (sha, 1.6, 40, 1, "shot_start")])
    db.commit()
    at = logged_in("analyst").switch_page("views/media.py").run()
    at.text_input[0].input(sha).run()
    assert not at.exception, at.exception
    assert "Keyframes (2 shown)" in [s.value for s in at.subheader]
    assert len(at.image) == 3  # the video's own cell and two keyframes, all blurred until revealed
    assert [b.label for b in at.main.button].count("Reveal") == 3


def fake_scene_search(case_dir, query, mode, top_k=20, **_kw) -> dict:
    """A scene-mode result: a verified room match with point pairs and a place, and an unverified one."""
    result = fake_search(case_dir, query, mode, top_k)
    for r in result["results"]:
        r.update({"query_face": None, "box": None, "cosine": r["score"], "inliers": None, "matches": [],
                  "place": None, "verified": False})
    first = result["results"][0]
    first.update({"inliers": 42, "verified": True, "place": {"name": "Hotel Alpha", "detail": {}},
                  "matches": [[10.0 * i, 20.0 + i, 12.0 * i, 25.0 + i] for i in range(30)]})
    result["query"] = {"path": str(query), "mode": "scene", "faces": [], "masked": [[40.0, 30.0, 300.0, 500.0]]}
    result["threshold"] = 0.83
    return result


def test_scene_search_shows_score_parts_place_and_room_points(case, db, monkeypatch):
    import vidpipe.search.api

    monkeypatch.setattr(vidpipe.search.api, "search", fake_scene_search)
    at = logged_in("reviewer").switch_page("views/search.py").run()
    at.selectbox[0].select("scene")
    at.file_uploader[0].upload("room.jpg", (SAMPLE / IMAGES[0]).read_bytes(), "image/jpeg")
    button(at, "Search").click()
    at.run()
    assert not at.exception, at.exception
    page = texts(at)
    assert "1 person region(s) left out" in page
    assert "cosine 0.910 · 42 inliers" in page and "not verified" in page
    assert "Place: Hotel Alpha" in page
    assert [e.label for e in at.expander if not e.label.startswith("Reject the")] == ["Room points (42)"]
    # The query, three candidates and the side-by-side room points; nothing revealed yet.
    assert len(at.image) == 5 and not actions(db, "reveal")
