"""Synthetic H.264 clips: a low-detail moving checkerboard with a hard cut every ``shot_s`` seconds.

One generator serves both users that used to carry their own copy: the video-budget tests (small
tiles that grow per shot, a cut every 5 s) and bench/video_bench.py's long 720p/1080p videos (fixed
64 px tiles, a cut every 20 s). Low detail and ``ultrafast`` keep the encode cheap, so a test can
make a 20 s clip in about a second; the cuts give the keyframe selector shots to find.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_checkerboard_video(path: Path, seconds: float = 20.0, width: int = 640, height: int = 360,
                            fps: int = 30, *, shot_s: float = 5.0, tile: int = 16, tile_growth: int = 8,
                            shift: int = 3, colour_range: tuple[int, int] = (30, 225), crf: int = 32) -> Path:
    """Write ``seconds`` of ``width`` x ``height`` video at ``fps`` to ``path`` (MP4, libx264, yuv420p).

    Each shot is a two-colour checkerboard scrolling right by ``shift`` px per frame. Shot ``k`` has
    tiles of ``tile + k * tile_growth`` px and two colours drawn from ``colour_range`` by a generator
    seeded with ``k``, so every run writes the same frames. ``crf`` trades size for quality (higher is
    smaller); a keyframe every 2 s keeps seeking cheap. Returns ``path``.
    """
    import av  # PyAV is a runtime dependency, but only the callers that make videos should pay its import

    yy, xx = np.mgrid[0:height, 0:width]
    low, high = colour_range
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": str(crf), "g": str(fps * 2)}
        for shot in range(int(np.ceil(seconds / shot_s))):
            colours = np.random.default_rng(shot).integers(low, high, size=(2, 3), dtype=np.uint8)
            cell = tile + tile_growth * shot
            board = ((xx // cell + yy // cell) % 2).astype(bool)
            base = np.where(board[..., None], colours[0], colours[1]).astype(np.uint8)
            for i in range(int(round(min(shot_s, seconds - shot * shot_s) * fps))):
                frame = av.VideoFrame.from_ndarray(np.roll(base, shift * i, axis=1), format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
