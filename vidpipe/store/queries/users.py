"""Local UI accounts, their wellness settings and the per-case secret that hashes unknown names.

Rules (password policy, roles, case-insensitive names) live in ``vidpipe/accounts/``; this module only
reads and writes the rows (tables ``users``, ``user_prefs``, ``ui_secrets``).
"""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any

from vidpipe.store.casedb import utc_now

NAME_HMAC_KEY_BYTES = 32  # HMAC-SHA256 key as long as its output (RFC 2104 section 3)


def account_rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every account with its password hash (``user_id``, ``name``, ``role``, ``password_hash``,
    ``disabled``), for a name lookup done in Python (SQLite's lower() folds ASCII only)."""
    return conn.execute("SELECT user_id, name, role, password_hash, disabled FROM users").fetchall()


def insert_account(conn: sqlite3.Connection, name: str, role: str, password_hash: str) -> int:
    """Add an account and return its ``user_id``; raises ``sqlite3.IntegrityError`` when the name
    is taken (in any letter case: a trigger of the schema checks)."""
    cur = conn.execute("INSERT INTO users(name, role, password_hash, created_utc) VALUES (?,?,?,?)",
                       (name, role, password_hash, utc_now()))
    return int(cur.lastrowid)


def account_by_id(conn: sqlite3.Connection, user_id: int) -> sqlite3.Row | None:
    """``user_id``, ``name``, ``role`` and ``disabled`` of one account, or None."""
    return conn.execute("SELECT user_id, name, role, disabled FROM users WHERE user_id=?", (user_id,)).fetchone()


def set_account_disabled(conn: sqlite3.Connection, user_id: int, disabled: bool) -> bool:
    """Disable or re-enable an account; False when no row changed (no such user)."""
    cur = conn.execute("UPDATE users SET disabled=? WHERE user_id=?", (1 if disabled else 0, user_id))
    return cur.rowcount == 1


def account_list(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every account without its password hash (``name``, ``role``, ``created_utc``, ``disabled``), by name."""
    return [dict(r) for r in conn.execute("SELECT name, role, created_utc, disabled FROM users ORDER BY name")]


def name_hmac_key(conn: sqlite3.Connection) -> bytes:
    """The case's random key for hashing user names in the audit trail, made on first use."""
    conn.execute("INSERT OR IGNORE INTO ui_secrets(name, secret, created_utc) VALUES ('name_hmac', ?, ?)",
                 (secrets.token_bytes(NAME_HMAC_KEY_BYTES), utc_now()))
    return bytes(conn.execute("SELECT secret FROM ui_secrets WHERE name='name_hmac'").fetchone()[0])


def prefs_row(conn: sqlite3.Connection, user_id: int) -> tuple[float, int, int, int] | None:
    """``(blur_share, reveal_s, break_every, break_minutes)`` stored for a user, or None (defaults apply)."""
    row = conn.execute("SELECT blur_share, reveal_s, break_every, break_minutes FROM user_prefs WHERE user_id=?",
                       (user_id,)).fetchone()
    return None if row is None else (float(row[0]), int(row[1]), int(row[2]), int(row[3]))


def save_prefs_row(conn: sqlite3.Connection, user_id: int, blur_share: float, reveal_s: int, break_every: int,
                   break_minutes: int) -> None:
    """Store (insert or replace) a user's wellness settings; the caller has validated them."""
    conn.execute("INSERT INTO user_prefs(user_id, blur_share, reveal_s, break_every, break_minutes, updated_utc) "
                 "VALUES (?,?,?,?,?,?) ON CONFLICT(user_id) DO UPDATE SET blur_share=excluded.blur_share, "
                 "reveal_s=excluded.reveal_s, break_every=excluded.break_every, "
                 "break_minutes=excluded.break_minutes, updated_utc=excluded.updated_utc",
                 (user_id, blur_share, reveal_s, break_every, break_minutes, utc_now()))
