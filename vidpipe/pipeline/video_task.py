"""The video probe stage: container facts through PyAV, local bytes only. Runs in a worker.

Keyframes, faces and signatures for video come with the video stage; the probe records what
the container says and whether the first video frame decodes.
"""

from __future__ import annotations

from fractions import Fraction

from vidpipe.pipeline.tasks import ContentResult, ContentTask
from vidpipe.sources.archive import ArchiveError
from vidpipe.sources.opener import open_item

# Sniffed label -> FFmpeg demuxer. Passing the demuxer explicitly, over a Python file object,
# means FFmpeg never guesses a format such as HLS or concat that would open other URLs.
DEMUXERS = {"MP4": "mp4", "MOV": "mov", "3GP": "3gp", "3G2": "3g2", "MKV": "matroska", "AVI": "avi",
            "MPEG-TS": "mpegts", "MPEG-PS": "mpeg", "FLV": "flv", "ASF": "asf"}


def probe_video(task: ContentTask) -> ContentResult:
    stage = "video_probe"
    demuxer = DEMUXERS.get(task.label)
    if demuxer is None:
        return ContentResult(task.sha256, "failed", "format_not_allowed", stage)
    try:
        import av
    except ImportError:  # pragma: no cover - av is pinned
        return ContentResult(task.sha256, "failed", "missing_dependency:av", stage)
    try:
        stream = open_item(task.ref, task.limits)
    except (ArchiveError, OSError) as exc:
        return ContentResult(task.sha256, "failed", getattr(exc, "reason", "read_error"), stage)
    with stream:
        try:
            container = av.open(stream, mode="r", format=demuxer,
                                options={"protocol_whitelist": "file"}, timeout=10.0)
        except (av.FFmpegError, ValueError, OSError) as exc:
            return ContentResult(task.sha256, "failed", "decode_error", stage, detail={"error": str(exc)[:300]})
        with container:
            info = _container_info(container)
            video_streams = [s for s in container.streams if s.type == "video"]
            if not video_streams:
                return ContentResult(task.sha256, "failed", "no_video_stream", stage, detail=info)
            first_ok = _first_frame_decodes(container, video_streams[0])
    vs = info["video"]
    status, reason = ("ok", None) if first_ok else ("failed", "decode_error")
    return ContentResult(task.sha256, status, reason, stage, width=vs.get("width"), height=vs.get("height"),
                         detail={"video": info})


def _container_info(container) -> dict:
    info: dict = {"container": container.format.name,
                  "duration_s": round(container.duration / 1_000_000, 3) if container.duration else None,
                  "creation_time": container.metadata.get("creation_time"), "video": {}, "audio": None}
    for s in container.streams:
        if s.type == "video" and not info["video"]:
            rate = s.average_rate or s.guessed_rate
            info["video"] = {"codec": s.codec_context.name, "width": s.codec_context.width,
                             "height": s.codec_context.height,
                             "fps": float(rate) if isinstance(rate, Fraction) and rate else None,
                             "frames": s.frames or None,
                             "rotation": s.metadata.get("rotate")}
        elif s.type == "audio" and info["audio"] is None:
            info["audio"] = {"codec": s.codec_context.name, "sample_rate": s.codec_context.sample_rate}
    return info


def _first_frame_decodes(container, stream) -> bool:
    import av

    try:
        for frame in container.decode(stream):
            return frame.width > 0
    except (av.FFmpegError, ValueError, OSError, EOFError):
        return False
    return False
