"""Retention: removing a content item's derived data from a case, with a tombstone and an audit entry.

What ``remove_content`` does for each SHA-256, all database changes in one transaction:

- deletes every row derived from the content: every table with a foreign key to
  ``media(sha256)`` (signals, stages, faces, frames, vpdq, hashlist_hits, scenes, places, ...) and
  every table with a foreign key to those rows (face_person), found from the schema itself, so a
  table added later is either known here or makes the removal refuse before changing anything;
- review records that point at the content (``decisions``, ``face_constraints``) are copied into
  the tombstone (who decided what, when) and then deleted: they cannot outlive the media row they
  reference, and the audit trail keeps its own entries for them untouched;
- deletes the ``media`` row; the content's paths stay in ``items`` as final
  ``skipped: removed_retention`` (so ``discovered == ok + partial + failed + skipped`` still
  holds and export still lists every path) with their SHA-256 cleared (the tombstone keeps it);
- appends a ``retention_remove`` entry to the hash-chained audit trail and a row to
  ``retention_tombstones`` (what, when, by whom, why, how many rows of which table).

Then, outside the transaction: the content's vectors are deleted from every index (an index that
cannot delete is rebuilt), quarantined index files (old copies that may hold the vectors) and the
content's thumbnails are deleted. A crash after the commit leaves indexes whose fingerprint no
longer matches the database, which the next open rebuilds; running the removal again for the same
SHA-256 finishes the file clean-up. Deleted rows are overwritten in the database file
(``PRAGMA secure_delete``) and the WAL is truncated afterwards.

Evidence files are never opened, changed or deleted.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.base import INDEX_FILE_SUFFIX
from indexer.store import QUARANTINE_DIR
from vidpipe.errors import UsageError, VidpipeError
from vidpipe.store import audit
from vidpipe.store.casedb import CasePaths, transaction, utc_now

REMOVED_REASON = "removed_retention"
AUDIT_ACTION = "retention_remove"
# Tables derived from a content item: deleted with it.
DERIVED_TABLES = {"signals", "stages", "faces", "frames", "vpdq", "hashlist_hits", "scenes", "places",
                  "face_person"}
# Review records: copied into the tombstone, then deleted (they reference the rows that go).
REVIEW_TABLES = {"decisions", "face_constraints", "decision_overrules"}  # overrules: migration 12
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class RetentionError(VidpipeError):
    """The removal cannot be done safely (nothing was changed)."""


@dataclass
class _Plan:
    """Rows that reference a parent table, found from the schema: (table, column, parent column)."""

    children: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)


def _foreign_keys(conn: sqlite3.Connection) -> _Plan:
    plan = _Plan()
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        for fk in conn.execute(f"PRAGMA foreign_key_list({table})"):
            parent, column, parent_column = fk["table"], fk["from"], fk["to"]
            plan.children.setdefault(parent, []).append((table, column, parent_column or "rowid"))
    return plan


def _dependants(plan: _Plan, parent: str, seen: tuple[str, ...] = ()) -> list[tuple[str, str, str, str]]:
    """Every (table, column, parent table, parent column) below ``parent``, deepest first."""
    out = []
    for table, column, parent_column in plan.children.get(parent, []):
        if table in seen:
            continue
        out.extend(_dependants(plan, table, (*seen, parent)))
        out.append((table, column, parent, parent_column))
    return out


def normalise_sha256s(values: list[str]) -> list[str]:
    out = []
    for value in values:
        v = value.strip().lower()
        if not _SHA256.match(v):
            raise UsageError(f"not a SHA-256 (64 hex digits): {value!r}")
        if v not in out:
            out.append(v)
    return out


def _where(parent: str, parent_column: str, chain: dict[str, str]) -> str:
    """SQL selecting ``parent_column`` of the parent rows that belong to the content ``?``."""
    if parent == "media":
        return "SELECT sha256 FROM media WHERE sha256 = ?" if parent_column == "sha256" else \
            f"SELECT {parent_column} FROM media WHERE sha256 = ?"
    return f"SELECT {parent_column} FROM {parent} WHERE {chain[parent]}"


def _rows_of(conn: sqlite3.Connection, deps, sha: str) -> dict[str, tuple[str, list[sqlite3.Row]]]:
    """Per dependant table: (WHERE clause, its rows that belong to content ``sha``)."""
    clauses: dict[str, str] = {}
    for table, column, parent, parent_column in reversed(deps):  # parents before children
        sub = _where(parent, parent_column, clauses)
        clause = f"{column} IN ({sub})"
        clauses[table] = f"({clauses[table]}) OR ({clause})" if table in clauses else clause
    out = {}
    for table, clause in clauses.items():
        n_params = clause.count("?")
        out[table] = (clause, conn.execute(f"SELECT * FROM {table} WHERE {clause}", (sha,) * n_params).fetchall())
    return out


IndexRemoval = Callable[[CasePaths, sqlite3.Connection, list[str]], Callable[[], dict[str, dict]]]


def remove_content(paths: CasePaths, conn: sqlite3.Connection, sha256s: list[str], *, reason: str,
                   user: str, operator: str | None = None, index_removal: IndexRemoval) -> dict[str, Any]:
    """Remove these contents' derived data (see the module docstring); the caller holds the case's
    `WriteLock`. ``user`` (who ordered the removal) is the audit actor; ``operator`` (the OS
    account that ran it) is recorded beside. Returns the report `vidpipe retention remove` prints.

    ``index_removal(paths, conn, sha256s)`` runs before the rows go: it notes what the indexes hold
    of these contents and returns the step that deletes it once the rows are gone
    (`vidpipe.search.build.index_removal`; passed in because indexes are built above this layer).
    It is required: a removal that left the vectors in the indexes would not be one."""
    reason, user = (reason or "").strip(), (user or "").strip()
    if not reason or not user:
        raise UsageError("a removal needs --reason and --user")
    sha256s = normalise_sha256s(sha256s)
    present = {r[0] for r in conn.execute(
        f"SELECT sha256 FROM media WHERE sha256 IN ({','.join('?' * len(sha256s))})", sha256s)}
    tombstoned = {r[0]: r[1] for r in conn.execute(
        f"SELECT sha256, max(tombstone_id) FROM retention_tombstones WHERE sha256 IN ({','.join('?' * len(sha256s))}) "
        "GROUP BY sha256", sha256s)}
    unknown = [s for s in sha256s if s not in present and s not in tombstoned]
    if unknown:
        raise UsageError(f"not in this case: {', '.join(unknown)}")
    deps = _dependants(_foreign_keys(conn), "media")
    unhandled = sorted({t for t, *_ in deps} - DERIVED_TABLES - REVIEW_TABLES)
    if unhandled:
        raise RetentionError(f"tables {', '.join(unhandled)} reference media but retention does not know whether "
                             "they are derived data or records to keep; nothing was removed")
    todo = [s for s in sha256s if s in present]
    # The indexes as they are now (loaded, or rebuilt if they were stale), and the ids to delete.
    remove_from_indexes = index_removal(paths, conn, todo)
    conn.execute("PRAGMA secure_delete = ON")  # overwrite deleted rows in the database file
    results = []
    with transaction(conn):
        for sha in todo:
            results.append(_remove_one(conn, deps, sha, reason, user, operator))
    index_report = remove_from_indexes() if todo else {}
    files = {"quarantined_index_files": _purge_quarantine(paths.indexes) if todo or tombstoned else 0,
             "thumbnails": sum(_purge_thumbs(paths.thumbs, s) for s in sha256s)}
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"removed": results,
            "already_removed": [{"sha256": s, "tombstone_id": tombstoned[s]} for s in sha256s if s not in present],
            "indexes": index_report, "files_deleted": files}


def _remove_one(conn: sqlite3.Connection, deps, sha: str, reason: str, user: str,
                operator: str | None) -> dict[str, Any]:
    media = conn.execute("SELECT sha256, md5, sha1, size, kind, mime FROM media WHERE sha256 = ?", (sha,)).fetchone()
    items = conn.execute("SELECT item_id, locator, status, reason FROM items WHERE sha256 = ? ORDER BY locator_bytes",
                         (sha,)).fetchall()
    members = conn.execute("SELECT count(*) FROM items WHERE parent_sha256 = ?", (sha,)).fetchone()[0]
    rows = _rows_of(conn, deps, sha)
    counts: dict[str, int] = {}
    kept_records: dict[str, list[dict]] = {}
    # The decisions_no_delete trigger (migration 11) lets only this removal delete the content's
    # decisions, archived below; the mark is gone again before the transaction commits.
    conn.execute("INSERT OR IGNORE INTO retention_pending(sha256) VALUES (?)", (sha,))
    for table, _column, _parent, _pc in deps:  # deepest first: children before their parents
        if table in counts:
            continue
        clause, found = rows[table]
        counts[table] = len(found)
        if table in REVIEW_TABLES and found:
            kept_records[table] = [{k: r[k] for k in r.keys()} for r in found]
        if found:
            conn.execute(f"DELETE FROM {table} WHERE {clause}", (sha,) * clause.count("?"))
    conn.execute("DELETE FROM retention_pending WHERE sha256 = ?", (sha,))
    conn.execute("DELETE FROM media WHERE sha256 = ?", (sha,))
    conn.execute("UPDATE items SET state='final', status='skipped', reason=?, sha256=NULL WHERE sha256 = ?",
                 (REMOVED_REASON, sha))
    now = utc_now()
    detail = {"paths": [{"item_id": r["item_id"], "locator": r["locator"], "status_before": r["status"],
                         "reason_before": r["reason"]} for r in items],
              "rows_deleted": {t: n for t, n in sorted(counts.items()) if n}, "review_records": kept_records,
              "archive_members_kept": members, "mime": media["mime"]}
    seq = audit.append(conn, user, AUDIT_ACTION, sha, {
        "reason": reason, "operator": operator, "md5": media["md5"], "sha1": media["sha1"], "paths": len(items),
        "rows_deleted": detail["rows_deleted"], "review_records": {t: len(v) for t, v in kept_records.items()}})
    cur = conn.execute(
        "INSERT INTO retention_tombstones(sha256, md5, sha1, size, kind, removed_utc, removed_by, reason, audit_seq, "
        "detail) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (sha, media["md5"], media["sha1"], media["size"], media["kind"], now, user, reason, seq,
         json.dumps(detail, sort_keys=True, default=str)))
    return {"sha256": sha, "tombstone_id": cur.lastrowid, "audit_seq": seq, "paths": len(items),
            "rows_deleted": detail["rows_deleted"],
            "review_records_archived": {t: len(v) for t, v in kept_records.items()},
            "archive_members_kept": members}


def _purge_quarantine(indexes_dir: Path) -> int:
    """Quarantined index files are old copies that may hold removed vectors: delete them (the
    reason notes stay)."""
    qdir = Path(indexes_dir) / QUARANTINE_DIR
    n = 0
    for path in (qdir.glob(f"*{INDEX_FILE_SUFFIX}") if qdir.is_dir() else []):
        path.unlink(missing_ok=True)
        n += 1
    return n


def _purge_thumbs(thumb_dir: Path, sha: str) -> int:
    """Thumbnails and face crops of the content (``<sha256>[_t..][_c..].jpg`` and their sidecars)."""
    n = 0
    for path in (Path(thumb_dir).glob(f"{sha}*") if Path(thumb_dir).is_dir() else []):
        path.unlink(missing_ok=True)
        n += 1
    return n


def tombstones(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every tombstone, oldest first (for verify and reports); a case before migration 9 has none."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='retention_tombstones'").fetchone()
    if not exists:
        return []
    return [dict(r) for r in conn.execute("SELECT tombstone_id, sha256, removed_utc, removed_by, reason, audit_seq "
                                          "FROM retention_tombstones ORDER BY tombstone_id")]
