"""Per-browser-session state on the server: the case, the logged-in user, idle timeout, guards.

Everything here lives in ``st.session_state`` (one per browser session, on the server) or in
thread-local database connections; nothing about a case is put in Streamlit's process-wide
caches (``st.cache_data`` / ``st.cache_resource``), which every user would share.
Session keys start with ``_vp_`` and no widget uses that prefix, so a client cannot set them.

Sessions. Every browser session holds a vidpipe session id (``_vp_sid``, 256 random bits) that is
live only while it is in this process's registry (``_LIVE``). A login replaces it with a new id
and kills the old one; logout, idle timeout and the end of the browser session (tab closed,
connection lost: ``ui/serve.py`` calls ``end_streamlit_session``) remove it. A logged-in page run
needs a live id, so a login never outlives its session. Each login also gets a media token, which
``ui/serve.py`` requires on every ``/media`` URL (see there for what remains open).

Login throttling. Failed logins delay the *client* (the browser session; on this loopback-only
server every client has the address 127.0.0.1) with a growing wait, and the *user name* with a
shorter, capped one once several clients have failed on it. Neither is ever a permanent lock:
guessing is slowed, and the admin can still log in from another browser session.
"""

from __future__ import annotations

import math
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from ui.auth import Prefs, User, can, check_login, hashed_name, load_prefs, load_user, name_key
from vidpipe.store import audit
from vidpipe.store.casedb import CasePaths, open_case

CASE_ENV = "VIDPIPE_UI_CASE"
IDLE_ENV = "VIDPIPE_UI_IDLE_S"
IDLE_TIMEOUT_S = 15 * 60  # NIST SP 800-63B §4.3.3: reauthenticate after 15 min of inactivity (AAL3)
EXPOSURE_WARN_EVERY = Prefs().break_every  # default reveals between break reminders (per user: Settings)


@dataclass(frozen=True)
class Backoff:
    """A growing, capped wait after repeated failures: none for the first ``free`` failures, then
    ``base_s * 2**(failures - free)`` up to ``cap_s``; forgotten ``forget_s`` after the last one."""

    free: int
    base_s: float
    cap_s: float
    forget_s: float

    def wait_s(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures (0 while they are within the free ones)."""
        if failures < self.free:
            return 0.0
        return min(self.cap_s, self.base_s * 2 ** (failures - self.free))


# Per client: 5 tries free, then 5 s, 10 s, 20 s ... at most 15 min (OWASP Authentication Cheat
# Sheet: exponential back-off rather than a lock). Per name: only once 10 failures on that name
# (more than one client can make alone) -- 2 s, 4 s ... at most 60 s, so a name under attack costs
# its owner a minute at worst, never the account.
CLIENT_BACKOFF = Backoff(free=5, base_s=5.0, cap_s=15 * 60, forget_s=3600)
NAME_BACKOFF = Backoff(free=10, base_s=2.0, cap_s=60, forget_s=15 * 60)
_THROTTLE_MAX_KEYS = 10_000  # memory bound: the oldest entries go first

_AUTH = "_vp_auth"
_SID = "_vp_sid"
_CLIENT = "_vp_client"
_REVEALED = "_vp_revealed"
_REVEALED_EVER = "_vp_revealed_ever"
_KEEP_ON_RESET = ("_vp_notice", _CLIENT)
_local = threading.local()


def clock() -> float:
    """Seconds since the epoch (one place, so tests can move time)."""
    return time.time()


@dataclass
class _Live:
    """A live vidpipe session: anonymous (user_id None) until a login replaces it."""

    st_session: str | None   # the Streamlit session it belongs to
    user_id: int | None
    name: str | None
    media_token: str | None
    last_active: float


_registry_lock = threading.Lock()
_LIVE: dict[str, _Live] = {}          # vidpipe session id -> session
_MEDIA: dict[str, str] = {}           # media token -> vidpipe session id
_failures: dict[tuple[str, str], tuple[int, float]] = {}   # ("client"|"name", key) -> (count, last)


def case_paths() -> CasePaths:
    """The case this server was started for (``vidpipe ui --case DIR`` sets the variable)."""
    value = os.environ.get(CASE_ENV)
    if not value:
        st.error(f"No case configured: start the UI with `vidpipe ui --case DIR` ({CASE_ENV} is unset).")
        st.stop()
    return CasePaths(Path(value).resolve())


def conn() -> sqlite3.Connection:
    """This thread's connection to the case database (opened and migrated on first use)."""
    paths = case_paths()
    cached = getattr(_local, "conn", None)
    if cached is not None and getattr(_local, "root", None) == paths.root:
        return cached
    _, connection = open_case(paths.root, create=False)
    _local.conn, _local.root = connection, paths.root
    return connection


def idle_timeout_s() -> float:
    return float(os.environ.get(IDLE_ENV) or IDLE_TIMEOUT_S)


def _st_session_id() -> str | None:
    """The Streamlit session this page run belongs to (None outside a run)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def _issue(st_session: str | None, user: User | None = None) -> str:
    sid = secrets.token_urlsafe(32)
    token = secrets.token_urlsafe(32) if user is not None else None
    with _registry_lock:
        _LIVE[sid] = _Live(st_session, user.user_id if user else None, user.name if user else None, token, clock())
        if token:
            _MEDIA[token] = sid
    return sid


def _revoke(sid: str | None) -> _Live | None:
    with _registry_lock:
        live = _LIVE.pop(sid, None) if sid else None
        if live is not None and live.media_token:
            _MEDIA.pop(live.media_token, None)
    return live


def is_live(sid: str | None) -> bool:
    """True while vidpipe session ``sid`` may be used (not replaced by a login, logged out or ended)."""
    with _registry_lock:
        return bool(sid) and sid in _LIVE


def session_id() -> str:
    """This browser session's vidpipe session id; a new anonymous one when it has none live."""
    sid = st.session_state.get(_SID)
    if not is_live(sid):
        sid = _issue(_st_session_id())
        st.session_state[_SID] = sid
    return sid


def grant(user: User, st_session: str | None = None) -> dict:
    """The session-state entries of a new login of ``user`` (a new, live session id among them).

    ``login`` uses it for the current Streamlit session; tests use it to start a page logged in.
    """
    now = clock()
    return {_SID: _issue(st_session, user),
            _AUTH: {"user_id": user.user_id, "name": user.name, "role": user.role, "last_active": now,
                    "since": now}}


def end_streamlit_session(st_session: str, reason: str = "disconnect") -> int:
    """End every vidpipe session of a Streamlit session that has gone (tab closed, connection lost);
    logged-in ones are audited as a logout. Returns how many logins ended. Any thread."""
    with _registry_lock:
        sids = [sid for sid, live in _LIVE.items() if live.st_session == st_session]
    ended = [live for live in map(_revoke, sids) if live is not None and live.user_id is not None]
    for live in ended:
        audit.append(conn(), live.name, "logout", live.name, {"reason": reason})
    return len(ended)


def media_session(token: str) -> str | None:
    """The Streamlit session a media token was issued to, while its login is live and not idle."""
    with _registry_lock:
        sid = _MEDIA.get(token)
        live = _LIVE.get(sid) if sid else None
        if live is None or live.user_id is None or clock() - live.last_active > idle_timeout_s():
            return None
        return live.st_session


def media_token_for(st_session: str | None) -> str | None:
    """The media token of the login held by Streamlit session ``st_session``, if any."""
    if st_session is None:
        return None
    with _registry_lock:
        for live in _LIVE.values():
            if live.st_session == st_session and live.media_token:
                return live.media_token
    return None


def current_user(*, touch: bool = True) -> User | None:
    """The logged-in user, or None; ends the session when it has been idle too long."""
    sid = session_id()
    state = st.session_state.get(_AUTH)
    if not state:
        return None
    with _registry_lock:
        live = _LIVE.get(sid)
    if live is None or live.user_id != state.get("user_id"):
        # A login whose session id is not live: replaced, logged out or ended elsewhere.
        _reset_session()
        st.session_state["_vp_notice"] = "Your session has ended. Please log in again."
        session_id()
        return None
    now = clock()
    if now - state["last_active"] > idle_timeout_s():
        logout("idle_timeout")
        st.session_state["_vp_notice"] = "You were logged out after a period of inactivity."
        return None
    user = load_user(conn(), state["user_id"])  # a disabled account or changed role applies at once
    if user is None:
        logout("account_disabled")
        return None
    if touch:
        state["last_active"] = live.last_active = now
    return user


def _client_key() -> tuple[str, str]:
    """(throttling key, what the audit trail says) of the client of this page run.

    The address alone does not tell clients apart on a loopback-only server, so the key is the
    address plus a random id of the browser session (kept across logout, not across a new tab).
    """
    client = st.session_state.get(_CLIENT)
    if client is None:
        client = st.session_state[_CLIENT] = secrets.token_hex(8)
    try:
        ip = st.context.ip_address
    except Exception:  # noqa: BLE001 - no request context (tests, bare script runs)
        ip = None
    ip = ip if isinstance(ip, str) and ip else "local"
    return f"{ip}/{client}", f"{ip}#{client[:8]}"


def _wait_s(kind: str, key: str, policy: Backoff, now: float) -> float:
    with _registry_lock:
        count, last = _failures.get((kind, key), (0, 0.0))
    if count and now - last > policy.forget_s:
        with _registry_lock:
            _failures.pop((kind, key), None)
        return 0.0
    return max(0.0, last + policy.wait_s(count) - now)


def _fail(kind: str, key: str, now: float) -> None:
    with _registry_lock:
        count, _ = _failures.get((kind, key), (0, 0.0))
        _failures[(kind, key)] = (count + 1, now)
        while len(_failures) > _THROTTLE_MAX_KEYS:
            _failures.pop(min(_failures, key=lambda k: _failures[k][1]))


def _clear(kind: str, key: str) -> None:
    with _registry_lock:
        _failures.pop((kind, key), None)


def login(name: str, password: str) -> str | None:
    """Log in; returns None on success, else the message to show.

    Every refusal is audited as ``login_denied`` with its reason and the client; a name no account
    has is written as a keyed hash (``ui.auth.hashed_name``), never as typed.
    """
    c = conn()
    now = clock()
    client, client_label = _client_key()
    key = name_key(name)
    waits = {"throttled_client": _wait_s("client", client, CLIENT_BACKOFF, now),
             "throttled_name": _wait_s("name", key, NAME_BACKOFF, now)}
    reason, wait = max(waits.items(), key=lambda kv: kv[1])
    user = None
    if wait <= 0:
        user, reason = check_login(c, name, password)
    if user is None:
        known = reason not in ("unknown_user",) and _known_name(c, name)
        shown = known or hashed_name(c, name)
        audit.append(c, shown, "login_denied", shown,
                     {"reason": reason, "client": client_label, **({"wait_s": math.ceil(wait)} if wait > 0 else {})})
        if wait > 0:  # refused unchecked: says nothing about the password, and costs no failure
            return f"Too many failed attempts; try again in {math.ceil(wait)} s."
        _fail("client", client, now)
        _fail("name", key, now)
        return "Unknown user name or wrong password."
    _clear("client", client)
    _clear("name", key)
    _revoke(st.session_state.get(_SID))  # the pre-login id dies: a new one below
    _reset_session()
    st.session_state.update(grant(user, _st_session_id()))
    audit.append(c, user.name, "login", user.name, {"role": user.role, "client": client_label})
    return None


def _known_name(c: sqlite3.Connection, name: str) -> str | None:
    from ui.auth import find_user

    row = find_user(c, name)
    return row["name"] if row is not None else None


def logout(reason: str = "user") -> None:
    """End the session and forget everything it held (open review item, reveals, search results).

    The review queue itself is in the case database (ui/queue.py) and outlives the session.
    """
    state = st.session_state.get(_AUTH)
    _revoke(st.session_state.get(_SID))
    if state:
        audit.append(conn(), state["name"], "logout", state["name"],
                     {"reason": reason, "exposures": exposure_count()})
    _reset_session()


def _reset_session() -> None:
    for key in list(st.session_state.keys()):
        if key not in _KEEP_ON_RESET:
            del st.session_state[key]


def require(permission: str) -> User:
    """Stop the page unless a logged-in user holds ``permission`` (denials are audited)."""
    user = current_user()
    if user is None:
        st.warning("Please log in.")
        st.stop()
    if not can(user.role, permission):
        audit.append(conn(), user.name, "denied", permission, {"role": user.role})
        st.error(f"Your role ({user.role}) may not use this page.")
        st.stop()
    return user


def prefs() -> Prefs:
    """The logged-in user's wellness settings (the defaults when logged out)."""
    state = st.session_state.get(_AUTH)
    return load_prefs(conn(), state["user_id"]) if state else Prefs()


def exposure_count() -> int:
    """How many images this session has revealed."""
    return int(st.session_state.get("_vp_exposures", 0))


def _revealed() -> dict[str, float]:
    revealed = st.session_state.get(_REVEALED)
    if not isinstance(revealed, dict):  # a set from before reveals had a time
        revealed = st.session_state[_REVEALED] = dict.fromkeys(revealed or (), clock())
    return revealed


def is_revealed(key: str) -> bool:
    """True while thumbnail ``key`` is shown clear: revealed, and not longer ago than the user's
    ``reveal_s`` (after that it is blurred again; revealing it again is a new, logged exposure)."""
    when = _revealed().get(key)
    if when is None:
        return False
    limit = prefs().reveal_s
    if limit and clock() - when > limit:
        del _revealed()[key]
        return False
    return True


def was_revealed(key: str) -> bool:
    """True when this session has revealed ``key`` at least once (even if it is blurred again)."""
    return key in st.session_state.get(_REVEALED_EVER, set())


def reblur_due() -> bool:
    """True when a revealed image has passed its time and must be blurred on screen (forgets it)."""
    limit = prefs().reveal_s
    if not limit:
        return False
    now = clock()
    expired = [k for k, when in _revealed().items() if now - when > limit]
    for k in expired:
        del _revealed()[k]
    return bool(expired)


def reveal(user: User, key: str, sha256: str, detail: dict | None = None) -> None:
    """Un-blur one thumbnail for this session, log it, and count the exposure."""
    if not can(user.role, "reveal"):
        return
    if is_revealed(key):
        return
    _revealed()[key] = clock()
    st.session_state.setdefault(_REVEALED_EVER, set()).add(key)
    st.session_state["_vp_exposures"] = exposure_count() + 1
    audit.append(conn(), user.name, "reveal", sha256,
                 {"thumb": key, "exposures": exposure_count(), **(detail or {})})


def break_reminder() -> str | None:
    """The break reminder due now under the user's settings, or None."""
    p = prefs()
    n = exposure_count()
    if p.break_every and n and n % p.break_every == 0:
        return f"You have revealed {n} images this session. Consider a short break."
    state = st.session_state.get(_AUTH) or {}
    since = st.session_state.get("_vp_break_at") or state.get("since")
    if p.break_minutes and since and clock() - since >= p.break_minutes * 60:
        return f"You have been reviewing for over {p.break_minutes} minutes. Consider a short break."
    return None


def break_taken() -> None:
    """Restart the time until the next break reminder."""
    st.session_state["_vp_break_at"] = clock()
