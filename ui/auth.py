"""Roles' permissions and reviewers' wellness settings; the accounts themselves are below the CLI.

Every page and every action asks ``can(role, permission)`` on the server; the browser is never
trusted with a role. Accounts (roles, scrypt password hashes, case-insensitive names, logins) are
``vidpipe/accounts/users.py``, shared with ``vidpipe user``; their names are re-exported here for
the UI's pages and tests. The password policy is in ``vidpipe/accounts/passwords.py``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from vidpipe.accounts.users import (
    KEY_BYTES,
    MIN_PASSWORD_LEN,
    ROLES,
    SALT_BYTES,
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    User,
    add_user,
    authenticate,
    check_login,
    find_user,
    hash_password,
    hashed_name,
    list_users,
    load_user,
    name_key,
    password_problem,
    set_disabled,
    verify_password,
)
from vidpipe.store.queries import users as accounts

__all__ = [
    "BLUR_CHOICES", "KEY_BYTES", "MIN_PASSWORD_LEN", "PERMISSIONS", "REVEAL_CHOICES", "ROLES", "SALT_BYTES",
    "SCRYPT_N", "SCRYPT_P", "SCRYPT_R", "Prefs", "User", "add_user", "authenticate", "can", "check_login",
    "find_user", "hash_password", "hashed_name", "list_users", "load_prefs", "load_user", "name_key",
    "password_problem", "prefs_problem", "save_prefs", "set_disabled", "verify_password",
]

# Which role may do what. Pages and actions check these names, nothing else.
_ALL = frozenset(ROLES)
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": _ALL,                     # case overview, media detail
    "search": _ALL,                   # run a search with a query photo
    "reveal": _ALL,                   # un-blur one thumbnail (logged)
    "decide": frozenset({"examiner", "reviewer", "admin"}),   # confirm / reject / unsure
    "export": frozenset({"examiner", "admin"}),
    "ingest": frozenset({"examiner", "admin"}),
    "audit": frozenset({"examiner", "admin"}),
    "manage_users": frozenset({"admin"}),
}


def can(role: str | None, permission: str) -> bool:
    """True when ``role`` holds ``permission``; unknown roles and permissions hold nothing."""
    return role is not None and role in PERMISSIONS.get(permission, frozenset())


@dataclass(frozen=True)
class Prefs:
    """One reviewer's wellness settings (table ``user_prefs``)."""

    # Blur radius as a share of the image width. Measured on sample_media/photos/astronaut.jpg with
    # the case's FaceNet embedder (vidpipe.extract.faces, threshold 0.5261 at FAR 0.001), greyscale
    # + Gaussian blur, cosine of blurred vs clear embedding of the face shown 140 px wide (75 px):
    # grey only 0.971 (0.969); share 0.01 0.824 (0.714); 0.02 0.439 (0.461); 0.03 0.157 (0.171);
    # 0.04 0.073 (0.082); 0.05 0.016 (0.025); 0.08 -0.014 (-0.008); 0.12 0.003 (0.012).
    # 0.05 is the default (the embedding is then no closer to the face than a stranger's); 0.03 is
    # the lightest a user may choose (still far below the threshold).
    blur_share: float = 0.05
    reveal_s: int = 60         # a revealed image blurs again after this long (0 = never, until logout)
    break_every: int = 25      # reveals between break reminders (0 = never)
    break_minutes: int = 50    # minutes of session between break reminders (0 = never)


BLUR_CHOICES = (0.03, 0.05, 0.08, 0.12)
REVEAL_CHOICES = (0, 15, 30, 60, 120, 300)


def prefs_problem(prefs: Prefs) -> str | None:
    """Why settings are refused, or None."""
    if not BLUR_CHOICES[0] <= prefs.blur_share <= 0.5:
        return f"blur must be between {BLUR_CHOICES[0]} and 0.5 of the image width"
    if not 0 <= prefs.reveal_s <= 3600 or not 0 <= prefs.break_every <= 10000 or not 0 <= prefs.break_minutes <= 1440:
        return "times and counts must be between 0 and their limits (1 h, 10000 reveals, 24 h)"
    return None


def load_prefs(conn: sqlite3.Connection, user_id: int) -> Prefs:
    """The user's settings, or the defaults."""
    row = accounts.prefs_row(conn, user_id)
    return Prefs() if row is None else Prefs(*row)


def save_prefs(conn: sqlite3.Connection, user_id: int, prefs: Prefs) -> str | None:
    """Store the user's settings; returns why they were refused, or None."""
    problem = prefs_problem(prefs)
    if problem:
        return problem
    accounts.save_prefs_row(conn, user_id, prefs.blur_share, prefs.reveal_s, prefs.break_every, prefs.break_minutes)
    return None
