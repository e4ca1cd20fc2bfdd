"""The video stage: one decode pass gives container facts, keyframes by shot and interval, and a
Meta-compatible vPDQ signature; keyframes go on to the face stage. Runs in a worker.

Safety: FFmpeg reads our Python file object with the demuxer named by the sniffed type, so it
never guesses a format such as HLS or concat that would open other URLs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PIL import Image

from vidpipe.extract.hashers import get_hasher
from vidpipe.pipeline.tasks import ContentResult, ContentTask
from vidpipe.sources.archive import ArchiveError
from vidpipe.sources.opener import open_item
from vidpipe.store.video_rows import KeyframeRow, VpdqRow

DEMUXERS = {"MP4": "mp4", "MOV": "mov", "3GP": "3gp", "3G2": "3g2", "MKV": "matroska", "AVI": "avi",
            "MPEG-TS": "mpegts", "MPEG-PS": "mpeg", "FLV": "flv", "ASF": "asf"}
# Keyframes per video for ingest: each carries pixels to the face stage, so the cap bounds the
# worker's memory (120 x 1280x720 RGB ~ 330 MB) as well as the work; interval stretches to fit.
INGEST_MAX_KEYFRAMES = 120
KEYFRAME_EVERY_S = 2.0
STAGE = "video"
# ContentTask.options key: seconds the worker may decode before it stops and keeps what it found
# (vidpipe.video.budget.soft_budget_s, computed by the runner from probe_video's answer).
BUDGET_OPTION = "video_budget_s"


@dataclass(frozen=True)
class VideoProbe:
    """What the container says about a video, enough to budget its decode (vidpipe.video.budget)."""

    sha256: str
    duration_s: float | None
    width: int
    height: int
    fps: float | None


def _open(task: ContentTask, open_video, video_open_error):
    """(file object, stream) for the task's video, or the failed ContentResult that ends it."""
    demuxer = DEMUXERS.get(task.label)
    if demuxer is None:
        return ContentResult(task.sha256, "failed", "format_not_allowed", STAGE)
    try:
        fileobj = open_item(task.ref, task.limits)
    except (ArchiveError, OSError) as exc:
        return ContentResult(task.sha256, "failed", getattr(exc, "reason", None) or "read_error", STAGE)
    on_disk = None if task.ref.members else task.ref.fs_path.decode("utf-8", "surrogateescape")
    try:
        return fileobj, open_video(fileobj, demuxer, on_disk, threads=1)
    except video_open_error as exc:
        fileobj.close()
        reason = "no_video_stream" if "no video" in str(exc).lower() else "decode_error"
        return ContentResult(task.sha256, "failed", reason, STAGE, detail={"error": str(exc)[:300]})


def probe_video(task: ContentTask) -> VideoProbe | ContentResult:
    """Open the video and read its duration, size and rate (no decoding past the first frame).

    A video that cannot be opened gets the same failed result the video stage would give."""
    from vidpipe.video import VideoOpenError, open_video

    opened = _open(task, open_video, VideoOpenError)
    if isinstance(opened, ContentResult):
        return opened
    fileobj, stream = opened
    with fileobj, stream:
        return VideoProbe(task.sha256, stream.duration_s, int(stream.width), int(stream.height), stream.fps)


def process_video(task: ContentTask) -> ContentResult:
    """Keyframes, vPDQ and TMK in one decode pass, within the task's soft budget (if any): past it
    the pass stops and the video ends ``partial: timeout`` with what was found up to there.

    The budget counts this worker's CPU seconds, not the wall clock: on a shared machine the
    neighbours' load must not cut a video short (vidpipe.video.budget); the sandbox's wall-clock
    timeout, set well above it, still ends a worker that makes no progress."""
    started = time.process_time()
    from vidpipe.video import KeyframeSelector, VideoOpenError, VpdqHasher, open_video, scan_until
    from vidpipe.video.tmk import SIGNAL as TMK_SIGNAL
    from vidpipe.video.tmk import TmkAverager, to_hex

    budget_s = task.options.get(BUDGET_OPTION)
    deadline = started + budget_s if budget_s is not None else None
    opened = _open(task, open_video, VideoOpenError)
    if isinstance(opened, ContentResult):
        return opened
    fileobj, stream = opened
    timed_out, decoded_until_s = False, None
    with fileobj, stream:
        selector = KeyframeSelector(stream.nominal_fps or stream.fps, stream.duration_s,
                                    every_s=KEYFRAME_EVERY_S, max_keyframes=INGEST_MAX_KEYFRAMES)
        hasher = VpdqHasher(stream.fps)
        tmk = TmkAverager()
        try:
            outcome = scan_until(stream, (selector, hasher, tmk), deadline, clock=time.process_time)
        except Exception as exc:  # noqa: BLE001 - a decode error mid-stream keeps what came before
            selector_partial, error = True, f"{type(exc).__name__}: {exc}"[:300]
        else:
            timed_out, decoded_until_s = outcome.timed_out, outcome.decoded_until_s
            selector_partial, error = stream.partial or timed_out, None
        keyframes = selector.finish(partial=selector_partial)
        info = stream.info()
        upright_width = stream.height if stream.rotation in (90, 270) else stream.width
    if not keyframes.keyframes:
        return ContentResult(task.sha256, "failed", "decode_error", STAGE, detail={"video": info, "error": error})
    reason = "timeout" if timed_out else ("truncated" if keyframes.partial else None)
    result = ContentResult(task.sha256, "partial" if keyframes.partial else "ok", reason, STAGE,
                           width=info["width"], height=info["height"])
    feature = tmk.feature()
    if feature is not None:
        result.signals.append((TMK_SIGNAL, to_hex(feature), tmk.frames))
    phash, pdq = get_hasher("phash"), get_hasher("pdq")
    frames = []
    for kf in keyframes.keyframes:
        img = Image.fromarray(kf.rgb)
        p = pdq.compute(img)
        frames.append(KeyframeRow(float(kf.time_s), int(kf.frame_index), int(kf.shot_id), kf.reason, p.hex,
                                  int(p.quality), phash.compute(img).hex))
        if task.options.get("model_inputs"):
            from vidpipe.pipeline.face_stage import FaceInput

            result.face_inputs.append(FaceInput(task.sha256, kf.rgb, kf.rgb.shape[1] / max(1, upright_width),
                                                round(kf.time_s, 3)))
    result.detail = {"video": {**info, "keyframes": len(frames), "shots": keyframes.shots,
                               "cuts_s": [round(c, 3) for c in keyframes.cuts_s], "capped": keyframes.capped,
                               "keyframe_interval_s": round(keyframes.interval_s, 3),
                               "vpdq_frames": len(hasher.features), "error": error}}
    result.keyframes = frames
    result.vpdq = [VpdqRow(int(f.frame_number), int(f.quality), f.pdq_hex, float(f.timestamp_s))
                   for f in hasher.features]
    if timed_out:
        # Where the soft budget stopped the pass (the next run retries it once with a larger budget).
        result.detail.update({"decoded_until_s": round(decoded_until_s or 0.0, 3),
                              "duration_s": info["duration_s"], "budget_s": round(budget_s, 3)})
    return result
