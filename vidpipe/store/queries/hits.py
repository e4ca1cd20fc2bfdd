"""Known-hash lists and their hits, as the Known-hash hits page lists them (text only, no images)."""

from __future__ import annotations

import sqlite3

from vidpipe.store.queries.paths import first_path_sql


def hash_lists(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every imported list (``name``, ``negative``, ``entries``, ``imported_utc``, ``source_path``),
    oldest import first."""
    return conn.execute("SELECT name, negative, entries, imported_utc, source_path FROM hashlists "
                        "ORDER BY imported_utc").fetchall()


def positive_hits(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Hits on positive lists that no negative list suppressed: ``sha256``, ``list``, ``category``,
    ``match``, ``distance`` and the content's first ``path``; by list, match kind, distance."""
    return conn.execute(
        "SELECT h.sha256, l.name AS list, h.category, h.match, h.distance, "
        f"{first_path_sql('h.sha256')} AS path "
        "FROM hashlist_hits h JOIN hashlists l ON l.list_id = h.list_id "
        "WHERE h.suppressed = 0 AND l.negative = 0 ORDER BY l.name, h.match, h.distance, h.sha256").fetchall()


def suppressed_hit_count(conn: sqlite3.Connection) -> int:
    """How many positive-list hits a negative list (known false positives) suppressed."""
    return int(conn.execute("SELECT COUNT(*) FROM hashlist_hits h JOIN hashlists l ON l.list_id = h.list_id "
                            "WHERE h.suppressed = 1 AND l.negative = 0").fetchone()[0])
