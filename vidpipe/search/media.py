"""Rows every search mode reads back for its hits: the media item a hit points at, rows by id."""

from __future__ import annotations

import sqlite3

from vidpipe.store.queries.paths import first_path_sql


def media_info(conn: sqlite3.Connection, sha256s) -> dict[str, dict]:
    """sha256 -> {"sha256", "path" (smallest locator, bytewise, as the item_status view picks), "kind"}."""
    out: dict[str, dict] = {}
    shas = sorted(set(sha256s))
    for start in range(0, len(shas), 500):
        chunk = shas[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
                f"SELECT m.sha256, m.kind, {first_path_sql('m.sha256')} AS path FROM media m "
                f"WHERE m.sha256 IN ({marks})", chunk):
            out[row["sha256"]] = {"sha256": row["sha256"], "path": row["path"], "kind": row["kind"]}
    return out


def rows_by_id(conn: sqlite3.Connection, select: str, id_column: str, ids: list[int]) -> dict[int, sqlite3.Row]:
    """``id -> row`` of ``{select} WHERE {id_column} IN (ids)``, in chunks SQLite's variable limit allows."""
    out = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for row in conn.execute(f"{select} WHERE {id_column} IN ({','.join('?' * len(chunk))})", chunk):
            out[row[id_column]] = row
    return out
