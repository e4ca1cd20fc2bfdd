"""The shared review queue's rows (tables ``review_queue`` and ``review_skips``).

Who may do what, claim lapses and the order items are worked in are rules of ``ui/queue.py``;
this module reads and writes the rows. Writes join the caller's transaction (``ui/queue.py``
wraps each change with its audit entry in one).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from vidpipe.store.casedb import utc_now

# Every column a sender fills in; the rest (state, claim, decision) start empty or 'open'.
QUEUE_COLUMNS = ("item_key", "query_sha256", "query_path", "query_label", "query_kind", "query_face", "query_box",
                 "query_face_id", "mode", "media_sha256", "media_path", "kind", "video_time_s", "box", "face_id",
                 "score", "threshold", "rank", "above_threshold", "sent_by", "sent_utc")


def insert_queue_item(conn: sqlite3.Connection, values: dict[str, Any]) -> int | None:
    """Add an item unless one with its ``item_key`` is already open; its ``item_id``, or None when not added.

    ``values`` holds exactly ``QUEUE_COLUMNS`` (boxes as JSON text, ``above_threshold`` 0/1/None).
    """
    if set(values) != set(QUEUE_COLUMNS):
        raise ValueError(f"queue item columns differ: {sorted(set(values) ^ set(QUEUE_COLUMNS))}")
    cur = conn.execute(f"INSERT OR IGNORE INTO review_queue({', '.join(QUEUE_COLUMNS)}) "
                       f"VALUES ({','.join('?' * len(QUEUE_COLUMNS))})", [values[c] for c in QUEUE_COLUMNS])
    return int(cur.lastrowid) if cur.rowcount else None


def queue_row(conn: sqlite3.Connection, item_id: int) -> sqlite3.Row | None:
    """The whole ``review_queue`` row of ``item_id``, or None."""
    return conn.execute("SELECT * FROM review_queue WHERE item_id=?", (item_id,)).fetchone()


def open_queue_rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every open item's whole row, in no particular order (the caller sorts)."""
    return conn.execute("SELECT * FROM review_queue WHERE state='open'").fetchall()


def open_item_ids(conn: sqlite3.Connection) -> dict[str, int]:
    """``item_key`` (``mode:candidate key``) -> ``item_id`` of every open item."""
    return {r["item_key"]: r["item_id"] for r in
            conn.execute("SELECT item_key, item_id FROM review_queue WHERE state='open'")}


def skipped_item_ids(conn: sqlite3.Connection, reviewer: str) -> set[int]:
    """The items ``reviewer`` has skipped (they come last in that reviewer's order)."""
    return {r[0] for r in conn.execute("SELECT item_id FROM review_skips WHERE reviewer=?", (reviewer,))}


def set_claim(conn: sqlite3.Connection, item_id: int, reviewer: str) -> None:
    """Mark ``item_id`` as open by ``reviewer`` from now, releasing their claims on other open items."""
    conn.execute("UPDATE review_queue SET claimed_by=NULL, claimed_utc=NULL WHERE claimed_by=? AND item_id<>? "
                 "AND state='open'", (reviewer, item_id))
    conn.execute("UPDATE review_queue SET claimed_by=?, claimed_utc=? WHERE item_id=?", (reviewer, utc_now(), item_id))


def record_skip(conn: sqlite3.Connection, item_id: int, reviewer: str) -> None:
    """Put ``item_id`` behind the others for ``reviewer`` and drop their claim on it."""
    conn.execute("INSERT OR REPLACE INTO review_skips(item_id, reviewer, skipped_utc) VALUES (?,?,?)",
                 (item_id, reviewer, utc_now()))
    conn.execute("UPDATE review_queue SET claimed_by=NULL, claimed_utc=NULL WHERE item_id=? AND claimed_by=?",
                 (item_id, reviewer))


def close_queue_item(conn: sqlite3.Connection, item_id: int, decision_id: int, reviewer: str) -> None:
    """Close an open item with the decision that settled it (a closed item stays as it was)."""
    conn.execute("UPDATE review_queue SET state='done', decision_id=?, done_by=?, done_utc=?, claimed_by=NULL, "
                 "claimed_utc=NULL WHERE item_id=? AND state='open'", (decision_id, reviewer, utc_now(), item_id))
