"""Case verification: database integrity, accounting, and evidence re-hashing."""

from __future__ import annotations

import sqlite3
from typing import Any

from vidpipe.pipeline.sandbox import SandboxPool, TaskFailure
from vidpipe.pipeline.tasks import HashResult, HashTask, run_hash
from vidpipe.sources.base import ItemRef
from vidpipe.sources.limits import ArchiveLimits


def verify_case(conn: sqlite3.Connection, workers: int = 2, rehash: bool = True,
                indexes_dir=None) -> dict[str, Any]:
    """Run every check; ``ok`` is True only when all pass."""
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
    from vidpipe.store.audit import chain_status

    checks["audit_chain"] = chain_status(conn)
    if indexes_dir is not None:
        from indexer.build import index_counts

        counts = index_counts(conn, indexes_dir)
        checks["indexes"] = {"ok": all(c["ok"] for c in counts.values()), "indexes": counts}
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
