"""Where a content lies: all its paths, and the one *first path* that stands for it everywhere.

One content (a SHA-256) may sit at many paths. Reports, search results, thumbnails and the UI name
it by the bytewise-smallest name, the same path the ``item_status`` view gives the content's status
to, so a content is always shown under one path whatever order ingest found its copies in.
"""

from __future__ import annotations

import re
import sqlite3

_COLUMN = re.compile(r"[a-z_]+")


def first_path_sql(sha256_expr: str, column: str = "locator") -> str:
    """A scalar SQL subquery: ``column`` of the first path (smallest ``locator_bytes``) of a content.

    ``sha256_expr`` is an SQL expression for the content, e.g. ``"m.sha256"`` (correlated) or
    ``"?"`` (a parameter); ``column`` is an ``items`` column (``locator``, ``ref``, ...). Both come
    from code, never from input. The subquery is NULL when the content has no path. It uses the
    index on ``items(sha256)``, so it costs one index probe per outer row.
    """
    if not _COLUMN.fullmatch(column):
        raise ValueError(f"not an items column: {column!r}")
    return (f"(SELECT first_item.{column} FROM items first_item WHERE first_item.sha256 = {sha256_expr} "
            "ORDER BY first_item.locator_bytes LIMIT 1)")


def paths_of(conn: sqlite3.Connection, sha256: str) -> list[str]:
    """Every path of the content ``sha256``, first path first (bytewise name order)."""
    return [r[0] for r in conn.execute("SELECT locator FROM items WHERE sha256=? ORDER BY locator_bytes", (sha256,))]


def first_source(conn: sqlite3.Connection, sha256: str) -> sqlite3.Row | None:
    """``label``, ``kind`` and ``ref`` (the ItemRef blob of its first path) of a media item, or None
    when the case has no such media item or no path to it."""
    row = conn.execute(f"SELECT m.label, m.kind, {first_path_sql('m.sha256', 'ref')} AS ref FROM media m "
                       "WHERE m.sha256=?", (sha256,)).fetchone()
    return None if row is None or row["ref"] is None else row
