"""How much time the video stage may spend on one video (CPU seconds, and a wall-clock ceiling
above them), from its duration, frame size and rate.

The video stage decodes every frame once (shot detection needs them all) and feeds the folds
(keyframes, vPDQ, TMK), so its cost grows with frames x pixels, not with the file's bytes: a
24-minute 720p H.264 can be 49 MB. The worker learns duration, resolution and rate from the
container first (a cheap probe task), the runner turns them into two limits:

- the soft budget, in the worker's own CPU seconds (``time.process_time``), which the worker
  enforces itself: decoding stops there and what was found is kept (``partial: timeout`` with the
  time reached). CPU, not wall-clock, seconds: on a shared machine the neighbours' load must not
  cut a video short. Measured: at nice 10 with a load average of ~10 on 2 cores, the decoding
  worker got 20-45 % of a core, so a wall-clock budget of 4x the idle cost was spent before the
  work was (the 24-minute 720p and 1-hour 1080p test videos would have ended partial);
- the sandbox's hard wall-clock timeout, ``HARD_FACTOR`` x the soft budget (+ base): a worker that
  gets a quarter of a core still finishes a video that uses its whole CPU budget, and one that
  gets its usual share (the budget is SAFETY x the measured cost) is covered ~16 times over. Only
  a worker that makes no progress (a decoder stuck in native code) meets it (``failed: timeout``).

Formula (seconds): ``scale x (base_s + duration_s x fps x (PER_FRAME_S + PER_PIXEL_S x w x h) x SAFETY)``

Measured on this project's 2-core machine, idle (load < 1), one worker, one decode thread, all
folds on (the ingest pass of ``python -m bench.video_bench``), synthetic low-detail H.264 at 30 fps:

- 1280x720: 60 s of video in 5.0 s (12x real time) = 2.8 ms per frame;
- 1920x1080: 60 s in 10.2 s (5.9x real time) = 5.7 ms per frame;
- so PER_PIXEL_S = (5.7 - 2.8) ms / (2.07 - 0.92) Mpx ~ 2.5 ns per pixel and
  PER_FRAME_S = 2.8 ms - 0.92 Mpx x 2.5 ns ~ 0.5 ms per frame (Python, detector on 256 px).
- Real content: PySceneDetect's testvideo.mp4 (1280x720, 29.97 fps) 10.2x = 3.3 ms per frame, 1.2x the
  pattern's cost.
- SAFETY = 4: detailed or high-bitrate content decodes up to ~2x slower than the pattern (x2), and
  the CPU cost of a frame itself grows when the cores are shared (caches, SMT siblings) (x2).

So a 24-minute 720p30 video gets 60 + 1440 x 0.34 = 544 s (it needs ~120 s alone on a core; the
old size-based limit gave its 49 MB 61 s), and 1 hour of 1080p30 gets 2514 s (needs ~610 s).

Checked end to end (2026-12-04, ``vidpipe ingest --workers 2`` at nice 10 on the shared 2-core
machine, load average 6-13, textured generated H.264 with a cut every 20-40 s; README,
Benchmarks): the hour of 1080p30 (3.7 GB) ended ok, its worker used 593 CPU s (5.5 ms per frame,
24 % of its budget) over ~1,475 s of wall clock; 24 minutes of 720p30 (617 MB) ended ok with
~135 CPU s (3.1 ms per frame, 25 %) over ~400 s.

A claimed duration is only a claim: a forged header cannot buy more than ``MAX_DURATION_S`` of
budget, and one that claims too little ends ``partial: timeout`` with what was decoded.
"""

from __future__ import annotations

import math

from vidpipe.video.backends import MAX_FRAME_PIXELS

PER_FRAME_S = 0.5e-3          # measured (see above)
PER_PIXEL_S = 2.5e-9          # measured (see above)
SAFETY = 4.0                  # shared cores and harder content (see above)
HARD_FACTOR = 4.0             # hard wall-clock timeout = soft CPU budget x 4 + base (see module doc)
MAX_DURATION_S = 12 * 3600.0  # budget is granted for at most 12 hours of claimed video
DEFAULT_FPS = 30.0            # when the container gives no rate
UNKNOWN_DURATION_BITRATE = 500_000 / 8  # bytes/s: a duration-less stream is assumed this sparse (generous)


def cost_per_video_second(width: int, height: int, fps: float | None) -> float:
    """Expected wall seconds of the video stage per second of video (before SAFETY)."""
    rate = fps if fps and math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FPS
    # A forged frame size buys no more than the largest frame the decoder accepts (backends.py).
    pixels = min(max(1, int(width or 0)) * max(1, int(height or 0)), MAX_FRAME_PIXELS)
    return rate * (PER_FRAME_S + PER_PIXEL_S * pixels)


def soft_budget_s(duration_s: float | None, width: int, height: int, fps: float | None, base_s: float,
                  scale: float = 1.0, size_bytes: int | None = None) -> float:
    """The time the worker may decode before it stops and keeps what it found (see module doc).

    ``duration_s`` None (not in the container): estimated from ``size_bytes`` at a low bitrate."""
    if duration_s is None or not math.isfinite(duration_s) or duration_s <= 0:
        duration_s = (size_bytes or 0) / UNKNOWN_DURATION_BITRATE
    duration_s = min(duration_s, MAX_DURATION_S)
    return scale * (base_s + duration_s * cost_per_video_second(width, height, fps) * SAFETY)


def hard_timeout_s(soft_s: float, base_s: float) -> float:
    """The sandbox's kill deadline for a task whose worker stops itself at ``soft_s``."""
    return soft_s * HARD_FACTOR + base_s
