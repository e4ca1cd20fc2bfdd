"""Per-browser-session state on the server: the case, the logged-in user, idle timeout, guards.

Everything here lives in ``st.session_state`` (one per browser session, on the server) or in
thread-local database connections; nothing about a case is put in Streamlit's process-wide
caches (``st.cache_data`` / ``st.cache_resource``), which every user would share.
Session keys start with ``_vp_`` and no widget uses that prefix, so a client cannot set them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import streamlit as st

from ui.auth import User, authenticate, can, load_user
from vidpipe.store import audit
from vidpipe.store.casedb import CasePaths, open_case

CASE_ENV = "VIDPIPE_UI_CASE"
IDLE_ENV = "VIDPIPE_UI_IDLE_S"
IDLE_TIMEOUT_S = 15 * 60  # NIST SP 800-63B §4.3.3: reauthenticate after 15 min of inactivity (AAL3)
LOCKOUT_FAILURES = 5      # failed logins for one name within LOCKOUT_WINDOW_S before refusing it
LOCKOUT_WINDOW_S = 300
EXPOSURE_WARN_EVERY = 25  # reveals between reminders to take a break (our choice; see docs)

_AUTH = "_vp_auth"
_local = threading.local()


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


def current_user(*, touch: bool = True) -> User | None:
    """The logged-in user, or None; ends the session when it has been idle too long."""
    state = st.session_state.get(_AUTH)
    if not state:
        return None
    now = time.time()
    if now - state["last_active"] > idle_timeout_s():
        logout("idle_timeout")
        st.session_state["_vp_notice"] = "You were logged out after a period of inactivity."
        return None
    user = load_user(conn(), state["user_id"])  # a disabled account or changed role applies at once
    if user is None:
        logout("account_disabled")
        return None
    if touch:
        state["last_active"] = now
    return user


def login(name: str, password: str) -> str | None:
    """Log in; returns None on success, else the message to show."""
    c = conn()
    since = (datetime.now(UTC) - timedelta(seconds=LOCKOUT_WINDOW_S)).isoformat().replace("+00:00", "Z")
    if audit.count_recent(c, "login_failed", name.strip(), since) >= LOCKOUT_FAILURES:
        audit.append(c, name.strip() or "?", "login_refused", name.strip(), {"reason": "too_many_failures"})
        return f"Too many failed attempts; try again in {LOCKOUT_WINDOW_S // 60} minutes."
    user = authenticate(c, name, password)
    if user is None:
        audit.append(c, name.strip() or "?", "login_failed", name.strip())
        return "Unknown user name or wrong password."
    _reset_session()
    st.session_state[_AUTH] = {"user_id": user.user_id, "name": user.name, "role": user.role,
                               "last_active": time.time()}
    audit.append(c, user.name, "login", user.name, {"role": user.role})
    return None


def logout(reason: str = "user") -> None:
    """End the session and forget everything it held (queue, reveals, search results)."""
    state = st.session_state.get(_AUTH)
    if state:
        audit.append(conn(), state["name"], "logout", state["name"],
                     {"reason": reason, "exposures": exposure_count()})
    _reset_session()


def _reset_session() -> None:
    for key in list(st.session_state.keys()):
        if key != "_vp_notice":
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


def exposure_count() -> int:
    """How many images this session has revealed."""
    return int(st.session_state.get("_vp_exposures", 0))


def is_revealed(key: str) -> bool:
    return key in st.session_state.get("_vp_revealed", set())


def reveal(user: User, key: str, sha256: str, detail: dict | None = None) -> None:
    """Un-blur one thumbnail for this session, log it, and count the exposure."""
    if not can(user.role, "reveal"):
        return
    revealed = st.session_state.setdefault("_vp_revealed", set())
    if key in revealed:
        return
    revealed.add(key)
    st.session_state["_vp_exposures"] = exposure_count() + 1
    audit.append(conn(), user.name, "reveal", sha256,
                 {"thumb": key, "exposures": exposure_count(), **(detail or {})})
