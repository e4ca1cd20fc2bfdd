"""The append-only, hash-chained audit trail (table ``audit``).

Each entry's hash covers its own fields and the previous entry's hash, so editing, deleting or
re-ordering any entry breaks the chain from that entry on; ``verify_chain`` names the first
broken one. A chain can still be cut short at its end, or re-hashed from the start, without a
trace in the table itself; exports therefore carry the chain head (seq and hash), and signed
checkpoints (`vidpipe audit checkpoint`, vidpipe/store/anchor.py) pin it outside the case.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from vidpipe.store.casedb import transaction, utc_now

GENESIS_HASH = "0" * 64  # prev_hash of the first entry
# BEFORE UPDATE/DELETE triggers that make ``audit`` (and ``decisions``) append-only (migration 11).
# They stop mistakes and casual edits; whoever drops them is caught by the chain, the decision
# bindings (vidpipe/store/decision_log.py) and an external anchor (vidpipe/store/anchor.py).
APPEND_ONLY_TRIGGERS = ("audit_no_update", "audit_no_delete", "decisions_no_update", "decisions_no_delete")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def entry_hash(seq: int, ts_utc: str, actor: str, action: str, target: str | None, detail: str | None,
               prev_hash: str) -> str:
    """SHA-256 over the stored fields of one entry (``detail`` exactly as stored text)."""
    payload = _canonical([seq, ts_utc, actor, action, target, detail, prev_hash])
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def append(conn: sqlite3.Connection, actor: str, action: str, target: str | None = None,
           detail: dict[str, Any] | None = None) -> int:
    """Append one entry and return its ``seq``.

    Runs inside the caller's transaction when there is one (so a decision and its audit entry
    commit together); otherwise takes the write lock itself (BEGIN IMMEDIATE), so two sessions
    appending at once cannot both claim the same predecessor.
    """
    with transaction(conn):
        last = conn.execute("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq = (last[0] + 1) if last else 1
        prev = last[1] if last else GENESIS_HASH
        ts = utc_now()
        detail_text = None if detail is None else _canonical(detail)
        digest = entry_hash(seq, ts, actor, action, target, detail_text, prev)
        conn.execute("INSERT INTO audit(seq, ts_utc, actor, action, target, detail, prev_hash, entry_hash) "
                     "VALUES (?,?,?,?,?,?,?,?)", (seq, ts, actor, action, target, detail_text, prev, digest))
    return seq


def verify_chain(conn: sqlite3.Connection) -> int | None:
    """The ``seq`` of the first entry that breaks the chain, or None when the whole chain holds.

    An entry is broken when its stored hash does not match its fields, when its ``prev_hash``
    is not the previous entry's hash, or when its ``seq`` does not follow the previous one
    (a deleted entry shows up at the entry after the gap).
    """
    return chain_status(conn)["first_broken"]


def chain_status(conn: sqlite3.Connection) -> dict[str, Any]:
    """``{ok, entries, first_broken, problem, head_seq, head_hash}`` for reports and ``vidpipe verify``."""
    prev_hash, prev_seq, n = GENESIS_HASH, 0, 0
    for row in conn.execute("SELECT seq, ts_utc, actor, action, target, detail, prev_hash, entry_hash "
                            "FROM audit ORDER BY seq"):
        n += 1
        seq = row[0]
        problem = None
        if seq != prev_seq + 1:
            problem = f"sequence gap: expected {prev_seq + 1}"
        elif row[6] != prev_hash:
            problem = "prev_hash does not match the previous entry"
        elif entry_hash(seq, row[1], row[2], row[3], row[4], row[5], row[6]) != row[7]:
            problem = "entry_hash does not match the entry's fields"
        if problem:
            return {"ok": False, "entries": n, "first_broken": seq, "problem": problem,
                    "head_seq": prev_seq, "head_hash": prev_hash}
        prev_hash, prev_seq = row[7], seq
    return {"ok": True, "entries": n, "first_broken": None, "problem": None,
            "head_seq": prev_seq, "head_hash": prev_hash}


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """``(seq, entry_hash)`` of the last entry, ``(0, GENESIS_HASH)`` for an empty trail."""
    row = conn.execute("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def recent(conn: sqlite3.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """The newest entries first, for the audit page."""
    return [dict(r) for r in conn.execute(
        "SELECT seq, ts_utc, actor, action, target, detail FROM audit ORDER BY seq DESC LIMIT ?", (limit,))]


def count_recent(conn: sqlite3.Connection, action: str, target: str, since_utc: str) -> int:
    """How many ``action`` entries for ``target`` were logged at or after ``since_utc``."""
    return conn.execute("SELECT COUNT(*) FROM audit WHERE action=? AND target=? AND ts_utc >= ?",
                        (action, target, since_utc)).fetchone()[0]
