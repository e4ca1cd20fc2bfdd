"""Bounds on an ingest run's resource limits, shared by the CLI's argument types and IngestConfig.

A run with a limit no file could meet (``--timeout 0``, ``--worker-memory-mb 1``) would mark
every file ``failed`` and, with retries recorded per configuration, spend the case's second
chances on nothing. Such runs are refused before any work (exit 2).
"""

from __future__ import annotations

import math
from typing import Any

MIN_TIMEOUT_S = 0.01            # seconds per file task; below this nothing can even be dispatched
MAX_TIMEOUT_S = 7 * 24 * 3600.0
# The cap is address space added on top of a worker's start-up size; Pillow, FFmpeg and numpy need
# tens of MB for the smallest real file, so anything under this fails every task.
MIN_WORKER_MEMORY_MB = 64
MAX_WORKER_MEMORY_MB = 1024 * 1024
MAX_WORKERS = 1024


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def limits_problem(config: Any) -> str | None:
    """What is wrong with an ``IngestConfig``'s limits, as one line; None when they are sensible."""
    checks = [  # (how the user names it, field, sensible?, what is expected)
        ("--workers", "workers", isinstance(config.workers, int) and 1 <= config.workers <= MAX_WORKERS,
         f"an integer from 1 to {MAX_WORKERS}"),
        ("--timeout", "task_timeout_s", _number(config.task_timeout_s)
         and MIN_TIMEOUT_S <= config.task_timeout_s <= MAX_TIMEOUT_S, f"seconds from {MIN_TIMEOUT_S} to {MAX_TIMEOUT_S:.0f}"),
        ("--worker-memory-mb", "worker_memory_mb", isinstance(config.worker_memory_mb, int)
         and MIN_WORKER_MEMORY_MB <= config.worker_memory_mb <= MAX_WORKER_MEMORY_MB,
         f"an integer from {MIN_WORKER_MEMORY_MB} to {MAX_WORKER_MEMORY_MB}"),
        ("--max-pixels", "max_pixels", isinstance(config.max_pixels, int) and config.max_pixels >= 1,
         "a positive integer"),
        ("batch_size", "batch_size", isinstance(config.batch_size, int) and config.batch_size >= 1, "a positive integer"),
        ("commit_interval_s", "commit_interval_s", _number(config.commit_interval_s) and config.commit_interval_s >= 0,
         "a number >= 0"),
        ("video_budget_scale", "video_budget_scale", _number(config.video_budget_scale)
         and config.video_budget_scale > 0, "a number > 0"),
    ]
    for name, attr, ok, expected in checks:
        if not ok:
            return f"{name} must be {expected} (got {getattr(config, attr, None)!r})"
    return None
