"""What a decision is checked against and leaves behind beside its own row: reveals and overrules.

The decisions themselves are written and read by ``vidpipe.store.decision_log``; the rules that
use these rows are in ``ui/review_rules.py``.
"""

from __future__ import annotations

import sqlite3

from vidpipe.store.casedb import utc_now


def has_revealed(conn: sqlite3.Connection, actor: str, sha256: str) -> bool:
    """Whether ``actor`` has ever revealed a picture of ``sha256`` (an audit ``reveal`` entry)."""
    return conn.execute("SELECT 1 FROM audit WHERE action='reveal' AND actor=? AND target=? LIMIT 1",
                        (actor, sha256)).fetchone() is not None


def overruled_by(conn: sqlite3.Connection) -> dict[int, int]:
    """Overruled decision id -> the first decision that overruled it."""
    return dict(conn.execute("SELECT overruled_id, MIN(decision_id) FROM decision_overrules "
                             "GROUP BY overruled_id").fetchall())


def add_overrule(conn: sqlite3.Connection, decision_id: int, overruled_id: int, reviewer: str, reason: str) -> None:
    """Record that decision ``decision_id`` overrules ``overruled_id``, with the reviewer's reason."""
    conn.execute("INSERT INTO decision_overrules(decision_id, overruled_id, reviewer, reason, created_utc) "
                 "VALUES (?,?,?,?,?)", (decision_id, overruled_id, reviewer, reason, utc_now()))
