"""A case report: runs with their provenance, counts by status and reason, notable findings."""

from __future__ import annotations

import json
import sqlite3
from typing import Any


def case_report(conn: sqlite3.Connection) -> dict[str, Any]:
    runs = [{"run_id": r["run_id"], "command": r["command"], "status": r["status"], "started_utc": r["started_utc"],
             "ended_utc": r["ended_utc"], "operator": r["operator"], "tool_version": r["tool_version"],
             "git_commit": r["git_commit"], "config_hash": r["config_hash"],
             "libraries": json.loads(r["libraries"])}
            for r in conn.execute("SELECT * FROM runs ORDER BY started_utc")]
    by_status: dict[str, dict[str, int]] = {}
    for r in conn.execute("SELECT status, reason, COUNT(*) n FROM item_status GROUP BY status, reason"):
        by_status.setdefault(r["status"] or "unfinished", {})[r["reason"] or "-"] = r["n"]
    kinds = dict(conn.execute("SELECT kind, COUNT(*) FROM media GROUP BY kind").fetchall())
    labels = dict(conn.execute("SELECT label, COUNT(*) FROM media GROUP BY label ORDER BY 2 DESC").fetchall())
    return {
        "sources": [r[0] for r in conn.execute("SELECT root FROM sources ORDER BY source_id")],
        "runs": runs,
        "items": sum(sum(v.values()) for v in by_status.values()),
        "by_status": by_status,
        "media_by_kind": kinds,
        "media_by_format": labels,
        "extension_mismatches": conn.execute("SELECT COUNT(*) FROM items WHERE ext_mismatch=1").fetchone()[0],
        "with_gps": conn.execute("SELECT COUNT(*) FROM media WHERE json_extract(exif,'$.gps') IS NOT NULL")
        .fetchone()[0],
        "pdq_low_quality": conn.execute("SELECT COUNT(*) FROM signals WHERE signal='pdq' AND quality < 50")
        .fetchone()[0],
    }


def format_report(rep: dict[str, Any]) -> str:
    lines = [f"sources: {', '.join(rep['sources'])}", f"runs: {len(rep['runs'])}"]
    for r in rep["runs"]:
        lines.append(f"  {r['started_utc']}  {r['command']:7s} {r['status']:11s} by {r['operator']} "
                     f"(vidpipe {r['tool_version']} {r['git_commit'] or ''})")
    lines.append(f"items: {rep['items']}")
    for status, reasons in sorted(rep["by_status"].items()):
        lines.append(f"  {status}: {sum(reasons.values())}")
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            if reason != "-":
                lines.append(f"      {reason}: {n}")
    lines.append("media by format: " + ", ".join(f"{k} {v}" for k, v in rep["media_by_format"].items()))
    lines.append(f"extension mismatches: {rep['extension_mismatches']}; with GPS: {rep['with_gps']}; "
                 f"PDQ quality < 50: {rep['pdq_low_quality']}")
    return "\n".join(lines)
