"""Second chances: work that ended on a limit of the sandbox, not on its evidence, is retried once.

A path or content that ended ``failed`` because its worker hit the time limit, the memory cap or
died (``timeout``, ``memory_limit``, ``crash_signal:N``, ``worker_exit:N``, ``worker_lost``), or
a video that ended ``partial: timeout`` (its soft budget ran out), says more about the limits
than about the file. The next ingest run retries each of them once, after its own work, in a
pool with ``TIME_FACTOR`` times the time and ``MEMORY_FACTOR`` times the memory. The attempt is
recorded in the row's ``detail`` JSON (``retry``: the run's configuration hash, run id, the
reason it replaced and the limits it had), so the same configuration never retries it again;
a run with other settings (say a larger ``--timeout``) gets its own single try.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, replace
from typing import Any

from vidpipe.pipeline.limits import MAX_TIMEOUT_S, MAX_WORKER_MEMORY_MB

TIME_FACTOR = 4.0    # time limits (task timeout and video budget) of a retry
MEMORY_FACTOR = 2    # memory cap of a retry's workers
_EXACT = ("timeout", "memory_limit", "worker_lost")
_PREFIXES = ("crash_signal:", "worker_exit:")


def is_retryable(status: str | None, reason: str | None) -> bool:
    """Did this record end on a sandbox limit (worth one try with larger limits)?"""
    if not reason:
        return False
    if status == "partial":
        return reason == "timeout"  # a video stopped by its soft budget
    return status == "failed" and (reason in _EXACT or reason.startswith(_PREFIXES))


def retry_config(config: Any) -> Any:
    """The run's configuration with the retry's larger limits (an ``IngestConfig``).

    Capped at the limits' maxima: ``replace`` validates the new configuration, and a run whose
    own limits were near the top must not abort, after all its work, on its retry's limits."""
    return replace(config, task_timeout_s=min(config.task_timeout_s * TIME_FACTOR, MAX_TIMEOUT_S),
                   worker_memory_mb=min(int(config.worker_memory_mb * MEMORY_FACTOR), MAX_WORKER_MEMORY_MB),
                   video_budget_scale=config.video_budget_scale * TIME_FACTOR)


@dataclass
class RetryPlan:
    """What one run retries: item ids (the hash stage died) and content hashes (a later stage)."""

    items: list[int] = field(default_factory=list)
    media: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items) + len(self.media)


def _tried_under(detail: str | None, config_hash: str) -> bool:
    try:
        retry = (json.loads(detail) or {}).get("retry") if detail else None
    except (ValueError, AttributeError):
        return False
    return isinstance(retry, dict) and retry.get("config_hash") == config_hash


def plan_retries(conn: sqlite3.Connection, source_ids: list[int], config_hash: str) -> RetryPlan:
    """Records under ``source_ids`` that ended on a limit and were not yet retried under ``config_hash``."""
    plan = RetryPlan()
    if not source_ids:
        return plan
    marks = ",".join("?" * len(source_ids))
    for row in conn.execute(f"SELECT item_id, status, reason, detail FROM items WHERE source_id IN ({marks}) "
                            "AND state='final' AND status='failed' ORDER BY item_id", source_ids):
        if is_retryable(row[1], row[2]) and not _tried_under(row[3], config_hash):
            plan.items.append(row[0])
    for row in conn.execute(
            f"SELECT m.sha256, m.status, m.reason, m.detail FROM media m WHERE m.state='done' "
            f"AND m.status IN ('failed','partial') AND m.sha256 IN (SELECT sha256 FROM items WHERE source_id IN ({marks})) "
            "ORDER BY m.sha256", source_ids):
        if is_retryable(row[1], row[2]) and not _tried_under(row[3], config_hash):
            plan.media.append(row[0])
    return plan


def start_retries(conn: sqlite3.Connection, plan: RetryPlan, run_id: str, config_hash: str, retry_cfg: Any) -> None:
    """Record the attempt on each row and put it back to pending (inside the caller's transaction).

    A content's detail is rewritten by its new result: the runner carries ``retry`` over
    (``carried_record``)."""
    limits = {"timeout_s": retry_cfg.task_timeout_s, "worker_memory_mb": retry_cfg.worker_memory_mb,
              "video_budget_scale": retry_cfg.video_budget_scale}
    for item_id in plan.items:
        reason = conn.execute("SELECT reason FROM items WHERE item_id=?", (item_id,)).fetchone()[0]
        record = {"config_hash": config_hash, "run_id": run_id, "after": f"failed:{reason}", **limits}
        conn.execute("UPDATE items SET state='pending', status=NULL, reason=NULL, "
                     "detail=json_set(COALESCE(detail,'{}'), '$.retry', json(?)) WHERE item_id=?",
                     (json.dumps(record, sort_keys=True), item_id))
    for sha256 in plan.media:
        status, reason = conn.execute("SELECT status, reason FROM media WHERE sha256=?", (sha256,)).fetchone()
        record = {"config_hash": config_hash, "run_id": run_id, "after": f"{status}:{reason}", **limits}
        conn.execute("UPDATE media SET state='pending', detail=json_set(COALESCE(detail,'{}'), '$.retry', json(?)) "
                     "WHERE sha256=?", (json.dumps(record, sort_keys=True), sha256))


def carried_record(conn: sqlite3.Connection, sha256: str) -> dict[str, Any] | None:
    """The retry attempt recorded on a content about to get its new result (None when not a retry)."""
    row = conn.execute("SELECT json_extract(detail, '$.retry') FROM media WHERE sha256=? AND state='pending'",
                       (sha256,)).fetchone()
    try:
        return json.loads(row[0]) if row and row[0] else None
    except ValueError:
        return None


def keep_earlier_partial(conn: sqlite3.Connection, sha256: str, record: dict[str, Any], failure: str) -> bool:
    """A retried ``partial: timeout`` video whose retry died outright keeps its earlier, partial
    result (frames, vPDQ, faces are still there); the retry's outcome is noted. True when kept."""
    if not str(record.get("after", "")).startswith("partial:"):
        return False
    record = {**record, "outcome": f"failed:{failure}"}
    conn.execute("UPDATE media SET state='done', detail=json_set(COALESCE(detail,'{}'), '$.retry', json(?)) "
                 "WHERE sha256=?", (json.dumps(record, sort_keys=True), sha256))
    return True
