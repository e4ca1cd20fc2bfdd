"""The ingest summary of the command-line contract, computed from the case database.

Counts come from the database, not from counters kept during the run, so a resumed run reports
the same numbers as an uninterrupted one and ``discovered == ok + partial + failed + skipped``
holds by construction (every discovered path is one row).
"""

from __future__ import annotations

import sqlite3
from typing import Any


def ingest_summary(conn: sqlite3.Connection, source_ids: list[int], run_id: str, elapsed_s: float,
                   faces_enabled: bool = False, scenes_enabled: bool = False) -> dict[str, Any]:
    marks = ",".join("?" * len(source_ids)) or "NULL"
    rows = conn.execute(
        f"SELECT s.status, s.reason, COUNT(*) AS n FROM item_status s JOIN items i ON i.item_id = s.item_id "
        f"WHERE i.source_id IN ({marks}) GROUP BY s.status, s.reason", source_ids).fetchall()
    counts = {"ok": 0, "partial": 0}
    failed: dict[str, int] = {}
    skipped: dict[str, int] = {}
    unfinished = 0
    for row in rows:
        status, reason, n = row["status"], row["reason"], row["n"]
        if status in ("ok", "partial"):
            counts[status] += n
        elif status == "failed":
            failed[reason or "unknown"] = failed.get(reason or "unknown", 0) + n
        elif status == "skipped":
            skipped[reason or "unknown"] = skipped.get(reason or "unknown", 0) + n
        else:
            unfinished += n
    discovered = sum(row["n"] for row in rows)
    kinds = dict(conn.execute(
        f"SELECT m.kind, COUNT(DISTINCT m.sha256) FROM media m JOIN items i ON i.sha256 = m.sha256 "
        f"WHERE i.source_id IN ({marks}) GROUP BY m.kind", source_ids).fetchall())
    partial_reasons = dict(conn.execute(
        f"SELECT s.reason, COUNT(*) FROM item_status s JOIN items i ON i.item_id = s.item_id "
        f"WHERE i.source_id IN ({marks}) AND s.status='partial' GROUP BY s.reason", source_ids).fetchall())
    faces = _count_if_table(conn, "faces", source_ids)
    scenes = _count_if_table(conn, "scenes", source_ids)
    if faces_enabled or scenes_enabled:
        # An image whose face or scene stage has not run yet is not finished either.
        missing = missing_model_stages_sql(faces_enabled, scenes_enabled)
        unfinished += conn.execute(
            f"SELECT COUNT(DISTINCT m.sha256) FROM media m JOIN items i ON i.sha256 = m.sha256 "
            f"WHERE i.source_id IN ({marks}) AND ((m.kind='image' AND m.width IS NOT NULL) OR m.kind='video') "
            f"AND m.state='done' AND m.status IN ('ok','partial') AND ({missing})", source_ids).fetchone()[0]
    frames = _count_if_table(conn, "frames", source_ids)
    return {
        "run_id": run_id,
        "status": "completed" if unfinished == 0 else "incomplete",
        "discovered": discovered,
        "ok": counts["ok"],
        "partial": counts["partial"],
        "failed": dict(sorted(failed.items())),
        "skipped": dict(sorted(skipped.items())),
        "images": kinds.get("image", 0) + kinds.get("raw_image", 0),
        "videos": kinds.get("video", 0),
        "archives": kinds.get("archive", 0),
        "frames": frames,
        "faces": faces,
        "scenes": scenes,
        "partial_reasons": dict(sorted((k or "unknown", v) for k, v in partial_reasons.items())),
        "unfinished": unfinished,
        "elapsed_s": round(elapsed_s, 3),
    }


def missing_model_stages_sql(faces: bool, scenes: bool) -> str:
    """SQL condition on media ``m``: a wanted model stage (faces, scenes) has not been recorded."""
    wanted = [stage for stage, on in (("faces", faces), ("scenes", scenes)) if on]
    return " OR ".join(f"NOT EXISTS (SELECT 1 FROM stages s WHERE s.sha256 = m.sha256 AND s.stage = '{stage}')"
                       for stage in wanted) or "0"


def _count_if_table(conn: sqlite3.Connection, table: str, source_ids: list[int]) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
    if not exists:
        return 0
    marks = ",".join("?" * len(source_ids)) or "NULL"
    return conn.execute(
        f"SELECT COUNT(*) FROM {table} t WHERE t.sha256 IN (SELECT i.sha256 FROM items i "
        f"WHERE i.source_id IN ({marks}))", source_ids).fetchone()[0]
