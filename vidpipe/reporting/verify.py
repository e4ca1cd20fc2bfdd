"""Case verification: database integrity, accounting, indexes, retention, and evidence re-hashing."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vidpipe.pipeline.sandbox import SandboxPool, TaskFailure
from vidpipe.pipeline.tasks import HashResult, HashTask, run_hash
from vidpipe.search.build import index_counts
from vidpipe.sources.base import ItemRef
from vidpipe.sources.limits import ArchiveLimits
from vidpipe.store.anchor import check_anchor, load_anchor
from vidpipe.store.audit import chain_status
from vidpipe.store.decision_log import check_bindings
from vidpipe.store.retention import REMOVED_REASON, tombstones


def verify_case(conn: sqlite3.Connection, workers: int = 2, rehash: bool = True,
                indexes_dir=None, expect_head=None, public_key: str | None = None) -> dict[str, Any]:
    """Run every check; ``ok`` is True only when all pass.

    ``expect_head`` is an anchor file (a checkpoint from `vidpipe audit checkpoint`, or an export
    naming the audit head): the chain must reach its entry with the same hash, and a checkpoint's
    signature must verify against ``public_key`` (hex) or a key recorded in the trail.
    """
    checks: dict[str, Any] = {}
    integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    checks["sqlite_integrity"] = {"ok": integrity == ["ok"], "messages": integrity[:20]}
    fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    checks["foreign_keys"] = {"ok": not fk, "violations": len(fk)}
    unfinished = conn.execute("SELECT COUNT(*) FROM item_status WHERE status IS NULL").fetchone()[0]
    total = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    final = conn.execute("SELECT COUNT(*) FROM item_status WHERE status IN ('ok','partial','failed','skipped')")\
        .fetchone()[0]
    checks["accounting"] = {"ok": unfinished == 0 and final == total, "items": total, "final": final,
                            "unfinished": unfinished}
    checks["audit_chain"] = chain_status(conn)
    checks["decision_bindings"] = check_bindings(conn)
    if expect_head is not None:
        checks["audit_anchor"] = check_anchor(conn, load_anchor(expect_head), public_key)
    if indexes_dir is not None:
        counts = index_counts(conn, indexes_dir)
        checks["indexes"] = {"ok": all(c["ok"] for c in counts.values()), "indexes": counts}
    checks["retention"] = _retention(conn, indexes_dir, counts if indexes_dir is not None else None)
    if rehash:
        checks["evidence_hashes"] = _rehash(conn, workers)
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}


def _rehash(conn: sqlite3.Connection, workers: int) -> dict[str, Any]:
    rows = conn.execute("SELECT item_id, ref, sha256, locator FROM items WHERE sha256 IS NOT NULL").fetchall()
    expected = {r["item_id"]: (r["sha256"], r["locator"]) for r in rows}
    mismatched, unreadable = [], []
    limits = ArchiveLimits()
    with SandboxPool({"hash": run_hash}, workers) as pool:
        for r in rows:
            pool.submit(r["item_id"], "hash", HashTask(r["item_id"], ItemRef.from_blob(r["ref"]), limits), 600)
        while pool.pending:
            for item_id, result in pool.results():
                sha, locator = expected[item_id]
                if isinstance(result, TaskFailure) or not isinstance(result, HashResult) or not result.ok:
                    unreadable.append(locator)
                elif result.sha256 != sha:
                    mismatched.append(locator)
    return {"ok": not mismatched and not unreadable, "checked": len(rows), "mismatched": sorted(mismatched)[:100],
            "unreadable": sorted(unreadable)[:100], "mismatched_count": len(mismatched),
            "unreadable_count": len(unreadable)}


def _retention(conn: sqlite3.Connection, indexes_dir, counts: dict | None) -> dict[str, Any]:
    """Content removed under retention stays removed: no row, path, thumbnail or index file holds it.

    Index files are judged by age: one written before the latest removal that is not current
    (stale or corrupt) or a quarantined copy may still hold removed vectors; `vidpipe retention
    remove` for the same SHA-256 again (or any search, for a stale index) cleans it up.
    """
    stones = tombstones(conn)
    out: dict[str, Any] = {"ok": True, "tombstones": len(stones)}
    if not stones:
        return out
    shas = sorted({t["sha256"] for t in stones})
    leftovers: dict[str, int] = {}
    marks = ",".join("?" * len(shas))
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        for fk in conn.execute(f"PRAGMA foreign_key_list({table})"):
            if fk["table"] == "media":
                n = conn.execute(f"SELECT count(*) FROM {table} WHERE {fk['from']} IN ({marks})", shas).fetchone()[0]
                if n:
                    leftovers[table] = leftovers.get(table, 0) + n
    for table, column in (("media", "sha256"), ("items", "sha256")):
        n = conn.execute(f"SELECT count(*) FROM {table} WHERE {column} IN ({marks})", shas).fetchone()[0]
        if n:
            leftovers[table] = n
    out["leftover_rows"] = leftovers
    out["paths_removed"] = conn.execute("SELECT count(*) FROM items WHERE reason = ?", (REMOVED_REASON,)).fetchone()[0]
    problems = [f"{n} {t} row(s) of removed content (re-ingested, or an unfinished removal)"
                for t, n in sorted(leftovers.items())]
    if indexes_dir is not None:
        latest = max(t["removed_utc"] for t in stones)
        root = Path(indexes_dir)
        thumbs = root.parent / "thumbs"
        n_thumbs = sum(1 for sha in shas for _ in thumbs.glob(f"{sha}*")) if thumbs.is_dir() else 0
        if n_thumbs:
            problems.append(f"{n_thumbs} thumbnail file(s) of removed content")
        for name, c in (counts or {}).items():
            if c["status"] in ("stale", "corrupt") and (c.get("created_utc") or "") <= latest:
                problems.append(f"index {name} is {c['status']} and older than the latest removal")
        qdir = root / "quarantine"
        old = [p.name for p in (qdir.glob("*.faiss") if qdir.is_dir() else [])
               if _utc(p.stat().st_mtime) <= latest]
        if old:
            problems.append(f"{len(old)} quarantined index file(s) older than the latest removal")
        out["latest_removal_utc"] = latest
    out["problems"] = problems
    out["ok"] = not problems
    return out


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
