"""Device selection in one place: CUDA when present and allowed, else CPU."""

from __future__ import annotations

import os


def select_device(requested: str | None = None) -> str:
    """``requested`` ("cpu", "cuda", "cuda:1") wins; else $VIDPIPE_DEVICE; else CUDA if available."""
    choice = requested or os.environ.get("VIDPIPE_DEVICE") or "auto"
    if choice != "auto":
        return choice
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is pinned
        return "cpu"


def configure_cpu_threads(n: int | None = None) -> int:
    """Threads torch may use for CPU inference (default: all CPUs); returns the number set."""
    import torch

    n = n or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n
