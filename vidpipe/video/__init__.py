"""The video layer: decoding backends, keyframes by shot, vPDQ signatures.

One decode pass can feed several folds (``KeyframeSelector``, ``VpdqHasher``) with ``scan``, so a
video is decoded once per ingest:

    with open_video(fileobj, "mp4", path) as stream:
        kf = KeyframeSelector(stream.nominal_fps or stream.fps, stream.duration_s)
        vp = VpdqHasher(stream.fps)
        scan(stream, kf, vp)
        keyframes, features = kf.finish(partial=stream.partial), vp.features
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from vidpipe.video.backends import (
    BACKENDS,
    Frame,
    OpenCVBackend,
    PyAVBackend,
    VideoBackend,
    VideoDecodeError,
    VideoOpenError,
    open_video,
    open_video_path,
)
from vidpipe.video.keyframes import Keyframe, KeyframeResult, KeyframeSelector, extract_keyframes
from vidpipe.video.vpdq import VpdqFeature, VpdqHasher, VpdqMatch, compute_vpdq, match_vpdq


def scan(stream: VideoBackend, *folds, deadline: float | None = None) -> int:
    """Decode ``stream`` once, pushing every frame into each fold; returns frames decoded.

    With ``deadline`` (a ``time.monotonic()`` value) the pass stops after the first frame that
    ends past it; ``scan_until`` says whether that happened and how far it got."""
    return scan_until(stream, folds, deadline).frames


@dataclass
class ScanOutcome:
    """How a decode pass ended: frames decoded, whether the deadline stopped it, the last
    frame's presentation time (the video is covered up to there)."""

    frames: int
    timed_out: bool
    decoded_until_s: float | None


def scan_until(stream: VideoBackend, folds, deadline: float | None = None, clock=time.monotonic) -> ScanOutcome:
    """``scan`` with a soft deadline: at least one frame is always pushed, then the pass stops
    as soon as ``clock()`` is past ``deadline``; the folds keep everything pushed so far. The
    ingest worker passes ``time.process_time`` (its own CPU seconds, vidpipe.video.budget)."""
    frames = stream.frames()
    last_t: float | None = None
    try:
        for frame in frames:
            for fold in folds:
                fold.push(frame)
            last_t = frame.time_s
            if deadline is not None and clock() > deadline:
                return ScanOutcome(stream.frames_decoded, True, last_t)
    finally:
        frames.close()  # an early stop must still close the container
    return ScanOutcome(stream.frames_decoded, False, last_t)


__all__ = ["BACKENDS", "Frame", "Keyframe", "KeyframeResult", "KeyframeSelector", "OpenCVBackend",
           "PyAVBackend", "VideoBackend", "VideoDecodeError", "VideoOpenError", "VpdqFeature", "VpdqHasher",
           "VpdqMatch", "ScanOutcome", "compute_vpdq", "extract_keyframes", "match_vpdq", "open_video",
           "open_video_path", "scan", "scan_until"]
