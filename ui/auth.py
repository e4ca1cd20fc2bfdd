"""Local accounts: slow salted password hashes, roles and the permission matrix.

Every page and every action asks ``can(role, permission)`` on the server; the browser is never
trusted with a role. Passwords are stored as ``scrypt$n$r$p$salt$hash`` (hex), the format the
``users.password_hash`` column documents.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass

from vidpipe.store.casedb import utc_now

ROLES = ("examiner", "analyst", "reviewer", "admin")

# scrypt cost: n=2**14, r=8, p=1 is the interactive-login setting of Percival's scrypt paper
# (2009, table 1) and the OWASP Password Storage Cheat Sheet's minimum; ~50 ms, 16 MiB per check.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_PASSWORD_LEN = 10  # NIST SP 800-63B-4 §3.1.1.2 asks for at least 8; we ask a little more

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


@dataclass(frozen=True)
class User:
    """A logged-in account as the UI holds it in server-side session state."""

    user_id: int
    name: str
    role: str


def can(role: str | None, permission: str) -> bool:
    """True when ``role`` holds ``permission``; unknown roles and permissions hold nothing."""
    return role is not None and role in PERMISSIONS.get(permission, frozenset())


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


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LEN:
        return f"password must have at least {MIN_PASSWORD_LEN} characters"
    if password.strip() != password:
        return "password must not start or end with white space"
    return None


def add_user(conn: sqlite3.Connection, name: str, role: str, password: str) -> tuple[User | None, str | None]:
    """Create an account; returns ``(user, None)`` or ``(None, reason)``."""
    name = name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        return None, "user name must be 1-64 printable characters"
    if role not in ROLES:
        return None, f"role must be one of {', '.join(ROLES)}"
    problem = password_problem(password)
    if problem:
        return None, problem
    try:
        cur = conn.execute("INSERT INTO users(name, role, password_hash, created_utc) VALUES (?,?,?,?)",
                           (name, role, hash_password(password), utc_now()))
    except sqlite3.IntegrityError:
        return None, f"user {name!r} already exists"
    return User(int(cur.lastrowid), name, role), None


def authenticate(conn: sqlite3.Connection, name: str, password: str) -> User | None:
    """The account when name and password match and the account is enabled, else None."""
    row = conn.execute("SELECT user_id, name, role, password_hash, disabled FROM users WHERE name=?",
                       (name.strip(),)).fetchone()
    if row is None:
        verify_password(password, _DUMMY_HASH)
        return None
    ok = verify_password(password, row["password_hash"])
    if not ok or row["disabled"]:
        return None
    return User(int(row["user_id"]), row["name"], row["role"])


def load_user(conn: sqlite3.Connection, user_id: int) -> User | None:
    """Re-read an account (role changes and disabling take effect on the next page load)."""
    row = conn.execute("SELECT user_id, name, role, disabled FROM users WHERE user_id=?", (user_id,)).fetchone()
    if row is None or row["disabled"]:
        return None
    return User(int(row["user_id"]), row["name"], row["role"])


def set_disabled(conn: sqlite3.Connection, name: str, disabled: bool) -> bool:
    """Disable or re-enable an account; False when there is no such user."""
    cur = conn.execute("UPDATE users SET disabled=? WHERE name=?", (1 if disabled else 0, name))
    return cur.rowcount == 1


def list_users(conn: sqlite3.Connection) -> list[dict]:
    """Every account without its password hash."""
    return [dict(r) for r in conn.execute("SELECT name, role, created_utc, disabled FROM users ORDER BY name")]
