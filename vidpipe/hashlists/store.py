"""Writing parsed hash lists into a case (tables ``hashlists`` and ``hashlist_entries``).

One import is one transaction: a killed import leaves nothing behind, so running it again is
safe. A list is identified by (name, SHA-256 of the source file): importing the same file under
the same name again adds no entries. Importing another file under an existing name adds that
file's entries to the list (a list's entries are the union of its imported files).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vidpipe.errors import UsageError
from vidpipe.hashlists.parse import BadRow, ListEntry, Row
from vidpipe.store.casedb import transaction, utc_now

BATCH = 20_000          # rows per executemany: bounded memory for lists of millions of entries
MAX_BAD_EXAMPLES = 20   # bad rows named in the result; the rest are only counted
# Random hex keys land all over four indexes; a page cache that holds them makes a 100k-row
# import ~2.4x faster than SQLite's 2 MB default (measured). A ceiling, not an allocation.
IMPORT_CACHE_KIB = 512 * 1024


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (the identity of an imported list file)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _ListSlot:
    """A list being imported: its id, whether this file was imported into it before, its count."""

    def __init__(self, list_id: int, name: str, already: bool, entries: int) -> None:
        self.list_id, self.name, self.already, self.entries = list_id, name, already, entries


def import_rows(conn: sqlite3.Connection, rows: Iterable[Row], *, source_path: Path, source_sha256: str,
                negative: bool, categories: dict[str, str] | None = None) -> dict[str, Any]:
    """Store every valid row in one transaction (the caller's, when one is open) and return what happened.

    Returns ``{"source", "rows", "imported", "bad_rows", "bad_reasons", "bad_examples", "lists"}``;
    ``lists`` names each list the file touched with ``already_imported`` true where this file
    had been imported under that name before (its rows are then read and counted, not stored).
    Raises UsageError when a list name exists with the other polarity (negative vs positive).
    """
    slots: dict[str, _ListSlot] = {}
    bad: Counter[str] = Counter()
    examples: list[dict[str, str]] = []
    batch: list[tuple[Any, ...]] = []
    total = imported = 0
    previous_cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
    try:
        with transaction(conn):  # joins the caller's transaction, else BEGIN IMMEDIATE ... COMMIT
            for row in rows:
                total += 1
                if isinstance(row, BadRow):
                    bad[row.reason] += 1
                    if len(examples) < MAX_BAD_EXAMPLES:
                        examples.append({"where": row.where, "reason": row.reason})
                    continue
                slot = slots.get(row.list_name)
                if slot is None:
                    slot = slots[row.list_name] = _open_list(conn, row.list_name, source_path, source_sha256, negative,
                                                             categories)
                if slot.already:
                    continue
                batch.append(_entry_tuple(slot.list_id, row))
                slot.entries += 1
                imported += 1
                if len(batch) >= BATCH:
                    _flush(conn, batch)
            _flush(conn, batch)
            for slot in slots.values():
                if not slot.already:
                    conn.execute("UPDATE hashlists SET entries = ? WHERE list_id = ?", (slot.entries, slot.list_id))
    finally:
        conn.execute(f"PRAGMA cache_size = {int(previous_cache)}")
    return {
        "source": {"path": str(source_path), "sha256": source_sha256},
        "rows": total, "imported": imported, "bad_rows": sum(bad.values()),
        "bad_reasons": dict(sorted(bad.items())), "bad_examples": examples,
        "lists": [{"list_id": s.list_id, "name": s.name, "negative": negative, "entries": s.entries,
                   "already_imported": s.already} for s in sorted(slots.values(), key=lambda s: s.list_id)],
    }


def _open_list(conn: sqlite3.Connection, name: str, source_path: Path, source_sha256: str, negative: bool,
               categories: dict[str, str] | None) -> _ListSlot:
    polarity = conn.execute("SELECT negative FROM hashlists WHERE name = ? LIMIT 1", (name,)).fetchone()
    if polarity is not None and bool(polarity[0]) != negative:
        was = "a negative (known false positives)" if polarity[0] else "a positive"
        raise UsageError(f"list {name!r} was imported as {was} list; import under another --name")
    row = conn.execute("SELECT list_id, entries FROM hashlists WHERE name = ? AND source_sha256 = ?",
                       (name, source_sha256)).fetchone()
    if row is not None:
        return _ListSlot(row[0], name, True, row[1])
    cur = conn.execute(
        "INSERT INTO hashlists(name, negative, source_path, source_sha256, imported_utc, entries, categories) "
        "VALUES (?,?,?,?,?,0,?)",
        (name, int(negative), str(source_path), source_sha256, utc_now(),
         json.dumps(categories, sort_keys=True) if categories else None))
    return _ListSlot(int(cur.lastrowid), name, False, 0)


def _entry_tuple(list_id: int, e: ListEntry) -> tuple[Any, ...]:
    return (list_id, e.category, e.md5, e.sha1, e.sha256, e.pdq)


def _flush(conn: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
    if batch:
        conn.executemany("INSERT INTO hashlist_entries(list_id, category, md5, sha1, sha256, pdq) "
                         "VALUES (?,?,?,?,?,?)", batch)
        batch.clear()


def list_lists(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every imported list with its unsuppressed hit count (negative lists: hits that suppress)."""
    hits = dict(conn.execute("SELECT list_id, COUNT(*) FROM hashlist_hits WHERE suppressed = 0 "
                             "GROUP BY list_id").fetchall())
    out = []
    for row in conn.execute("SELECT * FROM hashlists ORDER BY list_id"):
        out.append({"list_id": row["list_id"], "name": row["name"], "negative": bool(row["negative"]),
                    "entries": row["entries"], "source_path": row["source_path"],
                    "source_sha256": row["source_sha256"], "imported_utc": row["imported_utc"],
                    "categories": json.loads(row["categories"]) if row["categories"] else None,
                    "hits": hits.get(row["list_id"], 0)})
    return out
