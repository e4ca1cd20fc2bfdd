"""Accounts of the review UI: roles, slow salted password hashes, case-insensitive names, logins.

The CLI (``vidpipe user``) and the UI (``ui/auth.py``, which adds the permission matrix and the
wellness settings) share these rules. Passwords are stored as ``scrypt$n$r$p$salt$hash`` (hex),
the format the ``users.password_hash`` column documents. User names are case-insensitive
("Admin" is "admin"); the password policy is in ``vidpipe/accounts/passwords.py``; the rows are
read and written by ``vidpipe/store/queries/users.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass

from vidpipe.accounts import passwords
from vidpipe.store.queries import users as accounts

ROLES = ("examiner", "analyst", "reviewer", "admin")

# scrypt cost: n=2**14, r=8, p=1 is the interactive-login setting of Percival's scrypt paper
# (2009, table 1) and the OWASP Password Storage Cheat Sheet's minimum; ~50 ms, 16 MiB per check.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_PASSWORD_LEN = passwords.MIN_LENGTH


@dataclass(frozen=True)
class User:
    """An account as ``add_user`` returns it and as the UI holds it in server-side session state."""

    user_id: int
    name: str
    role: str


def hash_password(password: str) -> str:
    """A new ``scrypt$n$r$p$salt$hash`` string with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                         dklen=KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Check ``password`` against a stored hash in constant time; malformed hashes never match."""
    try:
        scheme, n, r, p, salt_hex, key_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        n_i, r_i, p_i = int(n), int(r), int(p)
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(key_hex)
        # Bound the work a tampered row can demand of the server.
        if n_i > 2**20 or r_i > 16 or p_i > 4 or not expected:
            return False
        key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n_i, r=r_i, p=p_i,
                             dklen=len(expected), maxmem=256 * 1024**2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(key, expected)


# A hash checked when the user name is unknown, so that the answer takes as long either way.
_DUMMY_HASH = hash_password(secrets.token_hex(16))


def password_problem(password: str, name: str = "") -> str | None:
    """Why a new password is refused for user ``name``, or None when it is acceptable."""
    return passwords.password_problem(password, name)


def name_key(name: str) -> str:
    """The form two user names are compared in: "Admin", "admin" and "ADMIN" are one account."""
    return name.strip().casefold()


def find_user(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    """The account called ``name`` in any letter case (an exact spelling wins when an older case
    holds two spellings), or None."""
    key = name_key(name)
    if not key:
        return None
    # The users table is small (accounts of one case): compare with casefold() in Python, which
    # folds every script, where SQLite's lower() folds ASCII only.
    found = [r for r in accounts.account_rows(conn) if name_key(r["name"]) == key]
    exact = [r for r in found if r["name"] == name.strip()]
    return (exact or found or [None])[0]


def add_user(conn: sqlite3.Connection, name: str, role: str, password: str) -> tuple[User | None, str | None]:
    """Create an account; returns ``(user, None)`` or ``(None, reason)``."""
    name = name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        return None, "user name must be 1-64 printable characters"
    if role not in ROLES:
        return None, f"role must be one of {', '.join(ROLES)}"
    problem = password_problem(password, name)
    if problem:
        return None, problem
    if find_user(conn, name) is not None:
        return None, f"user {name!r} already exists"
    try:
        user_id = accounts.insert_account(conn, name, role, hash_password(password))
    except sqlite3.IntegrityError:
        return None, f"user {name!r} already exists"
    return User(user_id, name, role), None


def check_login(conn: sqlite3.Connection, name: str, password: str) -> tuple[User | None, str]:
    """``(user, "ok")`` when name (any letter case) and password match an enabled account, else
    ``(None, reason)`` with reason ``unknown_user``, ``bad_password`` or ``disabled``."""
    row = find_user(conn, name)
    if row is None:
        verify_password(password, _DUMMY_HASH)  # as slow as a known name: the timing tells nothing
        return None, "unknown_user"
    if not verify_password(password, row["password_hash"]):
        return None, "bad_password"
    if row["disabled"]:
        return None, "disabled"
    return User(int(row["user_id"]), row["name"], row["role"]), "ok"


def authenticate(conn: sqlite3.Connection, name: str, password: str) -> User | None:
    """The account when name and password match and the account is enabled, else None."""
    return check_login(conn, name, password)[0]


def load_user(conn: sqlite3.Connection, user_id: int) -> User | None:
    """Re-read an account (role changes and disabling take effect on the next page load)."""
    row = accounts.account_by_id(conn, user_id)
    if row is None or row["disabled"]:
        return None
    return User(int(row["user_id"]), row["name"], row["role"])


def set_disabled(conn: sqlite3.Connection, name: str, disabled: bool) -> bool:
    """Disable or re-enable an account; False when there is no such user."""
    row = find_user(conn, name)
    if row is None:
        return False
    return accounts.set_account_disabled(conn, row["user_id"], disabled)


def hashed_name(conn: sqlite3.Connection, name: str) -> str:
    """A keyed hash that stands for a user name in the audit trail when no account has it.

    HMAC-SHA256 with a random per-case key (table ``ui_secrets``, made on first use): entries about
    one mistyped name can be grouped, but what was typed (often a password, typed into the name
    field) cannot be read back, nor checked against a word list without the key.
    """
    key = accounts.name_hmac_key(conn)
    return "hmac:" + hmac.new(key, name_key(name).encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def list_users(conn: sqlite3.Connection) -> list[dict]:
    """Every account without its password hash."""
    return accounts.account_list(conn)
