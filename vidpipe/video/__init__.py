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


def scan(stream: VideoBackend, *folds) -> int:
    """Decode ``stream`` once, pushing every frame into each fold; returns frames decoded."""
    for frame in stream.frames():
        for fold in folds:
            fold.push(frame)
    return stream.frames_decoded


__all__ = ["BACKENDS", "Frame", "Keyframe", "KeyframeResult", "KeyframeSelector", "OpenCVBackend",
           "PyAVBackend", "VideoBackend", "VideoDecodeError", "VideoOpenError", "VpdqFeature", "VpdqHasher",
           "VpdqMatch", "compute_vpdq", "extract_keyframes", "match_vpdq", "open_video", "open_video_path",
           "scan"]
