"""Sessions, login throttling, password policy and names (issue 12, item 3).

AppTest covers the page logic; a real server (as tests/test_ui_server.py starts it) covers what
only the server does: a session id named by a new connection is never honoured, and ``/media``
answers only the logged-in session that shows the file.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import urllib.error
import urllib.request

import pytest
from streamlit.testing.v1 import AppTest
from test_ui_support import APP, IMAGES, PASSWORD, build_case, cli, login, serve_case, sha_of, texts

from ui import session
from ui.auth import add_user, authenticate, find_user
from ui.passwords import password_problem
from ui.session import _AUTH, _SID, CLIENT_BACKOFF, NAME_BACKOFF


@pytest.fixture
def case(tmp_path, monkeypatch):
    return serve_case(tmp_path / "case", monkeypatch)


@pytest.fixture(autouse=True)
def fresh_registry():
    """Sessions and login failures live in the process (as in the server): none from other tests."""
    with session._registry_lock:
        session._LIVE.clear()
        session._MEDIA.clear()
        session._failures.clear()


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def denied(db) -> list[dict]:
    return [{**dict(r), "detail": json.loads(r["detail"])}
            for r in db.execute("SELECT * FROM audit WHERE action='login_denied' ORDER BY seq")]


def test_login_rotates_the_session_id_and_the_old_one_is_dead(case):
    at = app().run()
    before = at.session_state[_SID]
    assert session.is_live(before) and _AUTH not in at.session_state
    at = login(at, "reviewer")
    after = at.session_state[_SID]
    assert after != before and session.is_live(after) and not session.is_live(before)
    assert at.session_state[_AUTH]["name"] == "reviewer"
    # A session that presents the pre-login id (with the login) is not logged in.
    at.session_state[_SID] = before
    at.run()
    assert [w.label for w in at.text_input] == ["User name", "Password"]
    assert "Your session has ended" in texts(at)


def test_a_logged_out_or_closed_session_cannot_be_reused(case, db):
    at = login(app().run(), "examiner")
    sid, auth = at.session_state[_SID], dict(at.session_state[_AUTH])
    at.button(key="logout").click().run()
    assert not session.is_live(sid)
    again = app()
    again.session_state[_SID], again.session_state[_AUTH] = sid, auth
    again.run()
    assert [w.label for w in again.text_input] == ["User name", "Password"]

    # The tab is closed (the server calls end_streamlit_session when the connection ends).
    at = login(app().run(), "examiner")
    sid = at.session_state[_SID]
    st_session = session._LIVE[sid].st_session
    assert st_session and session.end_streamlit_session(st_session, "disconnect") >= 1
    assert not session.is_live(sid)
    at.run()
    assert [w.label for w in at.text_input] == ["User name", "Password"]
    last = db.execute("SELECT * FROM audit WHERE action='logout' ORDER BY seq DESC").fetchone()
    assert last["actor"] == "examiner" and json.loads(last["detail"])["reason"] == "disconnect"


def test_failures_delay_the_client_not_the_admin_elsewhere(case, db, clock):
    a = app().run()
    for _ in range(5):
        a = login(a, "admin", "not the admin password")
        assert "wrong password" in texts(a)
    a = login(a, "admin", PASSWORD)  # client A must wait ...
    assert "Too many failed attempts; try again in 5 s" in texts(a) and _AUTH not in a.session_state
    b = login(app().run(), "admin", PASSWORD)  # ... client B logs in as admin at once
    assert b.session_state[_AUTH]["name"] == "admin"
    reasons = [d["detail"]["reason"] for d in denied(db)]
    assert reasons == ["bad_password"] * 5 + ["throttled_client"]
    clients = {d["detail"]["client"] for d in denied(db)}
    assert len(clients) == 1  # every attempt of client A names the same client
    # The delay grows with each failure and is capped; it is never a permanent lock.
    clock.advance(6)
    a = login(a, "admin", "still not the password")
    a = login(a, "admin", PASSWORD)
    assert "try again in 10 s" in texts(a)
    clock.advance(11)
    a = login(a, "admin", PASSWORD)
    assert a.session_state[_AUTH]["name"] == "admin"
    assert [CLIENT_BACKOFF.wait_s(n) for n in (4, 5, 6, 7, 40)] == [0, 5, 10, 20, 900]
    assert [NAME_BACKOFF.wait_s(n) for n in (9, 10, 11, 40)] == [0, 2, 4, 60]


def test_many_clients_failing_on_one_name_slow_it_down_for_a_while_only(case, db, clock):
    for _ in range(2):  # two clients, five failures each: ten on the name
        at = app().run()
        for _ in range(5):
            at = login(at, "reviewer", "some wrong password")
    fresh = login(app().run(), "reviewer", PASSWORD)
    assert "Too many failed attempts; try again in 2 s" in texts(fresh)
    assert denied(db)[-1]["detail"]["reason"] == "throttled_name"
    clock.advance(3)
    fresh = login(fresh, "reviewer", PASSWORD)
    assert fresh.session_state[_AUTH]["name"] == "reviewer"


def test_a_mistyped_name_is_never_stored_as_typed(case, db):
    typed = "Tr0ub4dor&3-typed-into-the-name-field"
    at = app().run()
    at = login(at, typed, PASSWORD)
    at = login(at, typed, "something else entirely")
    rows = db.execute("SELECT * FROM audit").fetchall()
    dump = json.dumps([dict(r) for r in rows]).lower()
    assert typed.lower() not in dump and "typed-into" not in dump
    entries = denied(db)
    assert [e["detail"]["reason"] for e in entries] == ["unknown_user", "unknown_user"]
    assert entries[0]["actor"].startswith("hmac:") and entries[0]["actor"] == entries[1]["actor"]
    assert entries[0]["target"] == entries[0]["actor"]
    # A known name in another letter case is logged as the account's own spelling.
    login(app().run(), "REVIEWER", "wrong password for reviewer")
    assert denied(db)[-1]["actor"] == "reviewer" and denied(db)[-1]["detail"]["reason"] == "bad_password"


def test_user_names_are_case_insensitive(case, db):
    assert add_user(db, "Admin", "reviewer", "another long passphrase")[1] == "user 'Admin' already exists"
    with pytest.raises(sqlite3.IntegrityError):  # the database refuses it too (migration 13)
        db.execute("INSERT INTO users(name, role, password_hash, created_utc) VALUES ('ADMIN','admin','x','t')")
    db.rollback()
    assert authenticate(db, "ADMIN", PASSWORD) == authenticate(db, "admin", PASSWORD) != None  # noqa: E711
    assert find_user(db, " Admin ")["name"] == "admin"
    at = login(app().run(), "Admin")
    assert at.session_state[_AUTH]["name"] == "admin"
    assert db.execute("SELECT actor FROM audit WHERE action='login'").fetchone()[0] == "admin"


@pytest.mark.parametrize("password,why", [
    ("short", "at least 12"), ("password1234", "too common"), ("P@ssw0rd2024!", "too common"),
    ("Summer2024!!!", "too common"), ("qwertyuiop12", "too common"), ("iloveyouiloveyou", "too common"),
    ("aaaaaaaaaaaaaa", "repeated"), ("abcabcabcabc", "repeated"), ("123456789012", "sequence"),
    ("zyxwvutsrqpo", "sequence"), ("frank-frank-2024", "user name"), ("Frank1234567", "user name"),
])
def test_weak_passwords_are_refused(password, why):
    problem = password_problem(password, "frank")
    assert problem is not None and why in problem, (password, problem)


def test_good_passphrases_pass():
    for password in (PASSWORD, "a long enough password", "frank's long password", "tr0ub4dor&3 staple"):
        assert password_problem(password, "frank") is None, password


def test_cli_and_users_page_refuse_weak_passwords(case, db):
    for weak in ("password1234", "aaaaaaaaaaaaaaaa", "qwertyuiopasdf"):
        proc = cli("user", "add", "gina", "--role", "reviewer", "--case", str(case), "--password-stdin",
                   input_text=weak + "\n")
        assert proc.returncode == 2 and "password" in proc.stderr, (weak, proc.stderr)
    proc = cli("user", "add", "REVIEWER", "--role", "reviewer", "--case", str(case), "--password-stdin",
               input_text="a fine long passphrase\n")
    assert proc.returncode == 2 and "already exists" in proc.stderr
    at = login(app().run(), "admin").switch_page("views/users.py").run()
    at.text_input[0].input("gina")
    at.text_input[1].input("Password2024!")
    at.text_input[2].input("Password2024!")
    next(b for b in at.button if b.label == "Add user").click()
    at.run()
    assert "too common" in texts(at)
    assert db.execute("SELECT COUNT(*) FROM users WHERE name='gina'").fetchone()[0] == 0


# -- the real server -------------------------------------------------------------------------


class Browser:
    """A browser-like WebSocket session of the real server (Streamlit's own protocol)."""

    def __init__(self, url: str, resume: str | None = None) -> None:
        from websockets.sync.client import connect

        self.url = url
        protocols = ["streamlit", "x", resume] if resume else ["streamlit"]
        self.ws = connect(url.replace("http://", "ws://") + "/_stcore/stream", subprotocols=protocols, origin=url)
        self.session_id = ""
        self.widgets: dict[str, tuple[str, str]] = {}   # label -> (kind, widget id)
        self.images: list[str] = []
        self.text = ""

    def run(self, page: str = "", values: dict[str, object] | None = None, until: str = "") -> Browser:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_name = page
        for label, value in (values or {}).items():
            kind, wid = self.widgets[label]
            state = msg.rerun_script.widget_states.widgets.add()
            state.id = wid
            if kind == "button":
                state.trigger_value = bool(value)
            else:
                state.string_value = str(value)
        self.ws.send(msg.SerializeToString())
        shown = []
        deadline = time.time() + 60
        while time.time() < deadline:
            fm = ForwardMsg()
            fm.ParseFromString(self.ws.recv(timeout=60))
            kind = fm.WhichOneof("type")
            if kind == "new_session":
                self.session_id = fm.new_session.initialize.session_id
            elif kind == "delta":
                element = fm.delta.new_element
                which = element.WhichOneof("type")
                if which in ("text_input", "button"):
                    widget = getattr(element, which)
                    self.widgets[widget.label] = (which, widget.id)
                shown.append(str(fm.delta))
            elif kind == "script_finished" and fm.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                self.text = "\n".join(shown)
                if until in self.text:
                    break
        self.images = re.findall(r'url: "(/media/[^"]+)"', self.text)
        return self

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from test_ui_server import Server

    tmp = tmp_path_factory.mktemp("server")
    case = tmp / "case"
    build_case(case).close()
    srv = Server(case, tmp / "netlog")
    yield srv
    srv.stop()


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.headers["Cache-Control"] == "no-store, private"
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_server_never_resumes_a_session_by_its_id(server):
    first = Browser(server.url).run(until="Password")
    assert first.session_id and "Password" in first.text
    # Streamlit would hand this id's live session to the new connection (and cut off its tab).
    second = Browser(server.url, resume=first.session_id).run(until="Password")
    assert second.session_id and second.session_id != first.session_id
    assert "Password" in first.run(until="Password").text  # the first tab still has its session
    first.close()
    second.close()
    time.sleep(0.5)
    third = Browser(server.url, resume=first.session_id).run(until="Password")  # a closed tab's id
    assert third.session_id not in (first.session_id, second.session_id)
    third.close()


def test_media_only_for_the_logged_in_session_that_shows_it(server):
    tab = Browser(server.url).run(until="Password")
    tab.run(values={"User name": "analyst", "Password": PASSWORD, "Log in": True}, until="Case overview")
    assert "Case overview" in tab.text
    tab.run(page="media", until="SHA-256")
    tab.run(page="media", values={"SHA-256, MD5 or SHA-1 of the item": sha_of(IMAGES[0])}, until="/media/")
    assert len(tab.images) == 1, tab.text[-2000:]
    url = server.url + tab.images[0]
    bare = server.url + tab.images[0].split("?")[0]
    assert "?vp=" in url
    assert _get(url) == 200
    assert _get(bare) == 403                                   # no token
    assert _get(bare + "?vp=" + "A" * 43) == 403                # a made-up token
    # Another logged-in session's token does not open this session's file.
    other = Browser(server.url).run(until="Password")
    other.run(values={"User name": "reviewer", "Password": PASSWORD, "Log in": True}, until="Case overview")
    token = session_token = url.split("?vp=")[1]
    assert session_token
    other_tab_token = None
    other.run(page="media", until="SHA-256")
    other.run(page="media", values={"SHA-256, MD5 or SHA-1 of the item": sha_of(IMAGES[1])}, until="/media/")
    other_tab_token = other.images[0].split("?vp=")[1]
    assert other_tab_token != token
    assert _get(bare + "?vp=" + other_tab_token) == 403
    assert _get(server.url + other.images[0]) == 200
    # A closed tab's URLs die with it.
    tab.close()
    deadline = time.time() + 10
    while _get(url) != 403 and time.time() < deadline:
        time.sleep(0.2)
    assert _get(url) == 403
    other.close()
