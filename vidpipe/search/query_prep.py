"""Search queries are decoded in the sandbox, with the limits ingest gives evidence.

A query file is as untrusted as evidence (a photo from a suspect's phone, a clip from a chat): a
PNG of a few MB can inflate to gigabytes, a video can hold a hundred thousand frames, a decoder can
crash. So the whole preparation of a query, everything that parses its bytes, runs in one
:class:`~vidpipe.pipeline.sandbox.SandboxPool` worker (memory cap, wall-clock and CPU limits, no
network, no file writes) and comes back as :class:`QueryFeatures`, plain bounded values sent over
the typed result channel:

- ``face`` / ``scene``: the upright RGB copy the model stage would get at ingest (long side at most
  ``FACE_IMAGE_MAX_SIDE``) and its scale; the models then run in the search process on that array;
- ``near-dup``: the query's 8 dihedral PDQ and pHash hashes;
- ``video``: the vPDQ features and the TMK level-1 feature, from one decode of at most
  ``QUERY_MAX_FRAMES`` frames.

A query the sandbox cannot prepare (bomb, too long, undecodable, decoder crash) is a
``VidpipeError`` with one line saying why: exit 1 on the command line, a message in the UI.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vidpipe.decode.image import DecodeFailure, decode_image
from vidpipe.decode.model_input import model_input
from vidpipe.errors import UsageError, VidpipeError
from vidpipe.extract.hashers import PDQHasher, PHasher
from vidpipe.pipeline.sandbox import SandboxLimits, SandboxPool, TaskFailure
from vidpipe.pipeline.video_task import DEMUXERS
from vidpipe.search import MODES
from vidpipe.sources.opener import open_file_readonly, read_capped
from vidpipe.video import VideoOpenError, VpdqHasher, open_video, scan
from vidpipe.video.tmk import TmkAverager

# A query is a clip to look for, not a film: 30 min at 30 fps. Longer videos are refused before
# decoding when the container says so, and stopped at this frame when it lies.
QUERY_MAX_FRAMES = 54_000
QUERY_READ_CAP = 512 * 1024**2  # vidpipe.search.api.QUERY_MAX_BYTES: a larger file is refused before


@dataclass(frozen=True)
class QueryLimits:
    """The limits ingest applies to one piece of evidence (IngestConfig's defaults)."""

    max_pixels: int = 200_000_000       # IngestConfig.max_pixels / decode.image.DEFAULT_MAX_PIXELS
    memory_bytes: int = 2048 * 1024**2  # IngestConfig.worker_memory_mb
    timeout_s: float = 60.0             # IngestConfig.task_timeout_s (+ size / 50 MB/s, as ingest)
    max_frames: int = QUERY_MAX_FRAMES


@dataclass(frozen=True)
class QueryTask:
    """One query to prepare: its bytes, or a path the worker opens read-only."""

    mode: str
    label: str
    kind: str
    path: str | None = None
    data: bytes | None = None
    max_pixels: int = 200_000_000
    max_frames: int = QUERY_MAX_FRAMES


@dataclass
class QueryFeatures:
    """What search needs of a query, prepared in the sandbox (see the module docstring)."""

    mode: str
    pixels: np.ndarray | None = None  # face/scene: upright RGB uint8, long side <= FACE_IMAGE_MAX_SIDE
    scale: float | None = None        # pixels width / full-resolution upright width
    pdq: list = field(default_factory=list)    # near-dup: 8 dihedral PDQ hex hashes, identity first
    pdq_quality: int | None = None
    phash: list = field(default_factory=list)  # near-dup: 8 dihedral pHash hex hashes
    vpdq: list = field(default_factory=list)   # video: VpdqFeature per hashed frame
    tmk: np.ndarray | None = None     # video: TMK level-1 feature
    frames: int = 0                   # video: frames decoded
    error: str | None = None          # why the query cannot be used (one line)


# --------------------------------------------------------------------------------- in the worker
def prepare_query_task(task: QueryTask) -> QueryFeatures:
    """Worker: decode the query and derive its features; a bad query ends as ``error``."""
    data = task.data if task.data is not None else _read(task.path)
    try:
        if task.mode == "video":
            return _video_features(task, data)
        if task.mode == "near-dup":
            return _near_dup_features(task, data)
        return _image_features(task, data)
    except DecodeFailure as exc:
        return QueryFeatures(task.mode, error=f"the query image could not be decoded ({exc.reason}: {exc})")


def _read(path: str | None) -> bytes:
    with open_file_readonly(os.fsencode(path)) as fh:
        return read_capped(fh, QUERY_READ_CAP)


def _image_features(task: QueryTask, data: bytes) -> QueryFeatures:
    """As ingest prepares evidence for the model stage (`vidpipe.decode.model_input`): decode,
    orient upright, downscale."""
    prepared = model_input(data, task.label, max_pixels=task.max_pixels)
    return QueryFeatures(task.mode, pixels=prepared.pixels, scale=prepared.scale)


def _near_dup_features(task: QueryTask, data: bytes) -> QueryFeatures:
    """The decode ingest hashes (pixels as stored, no EXIF rotation), all 8 dihedral variants."""
    decoded = decode_image(data, task.label, max_pixels=task.max_pixels)
    del data
    pdq = PDQHasher.dihedral(decoded.rgb)
    return QueryFeatures(task.mode, pdq=[h.hex for h in pdq], pdq_quality=pdq[0].quality,
                         phash=dihedral_phashes(decoded.rgb))


def dihedral_phashes(rgb) -> list[str]:
    """pHash of the 8 rotation/flip variants of a PIL image."""
    t = Image.Transpose
    variants = [rgb] + [rgb.transpose(op) for op in (t.ROTATE_90, t.ROTATE_180, t.ROTATE_270, t.FLIP_LEFT_RIGHT,
                                                     t.FLIP_TOP_BOTTOM, t.TRANSPOSE, t.TRANSVERSE)]
    hasher = PHasher()
    return [hasher.compute(v).hex for v in variants]


class _TooLong(Exception):
    pass


class _FrameCap:
    """A fold that stops the decode pass after ``limit`` frames."""

    def __init__(self, limit: int) -> None:
        self.limit, self.seen = limit, 0

    def push(self, frame) -> None:
        self.seen += 1
        if self.seen > self.limit:
            raise _TooLong


def _video_features(task: QueryTask, data: bytes) -> QueryFeatures:
    """vPDQ and TMK level-1 of a query video, from one decode of at most ``max_frames`` frames."""
    too_long = (f"the query video is longer than {task.max_frames} frames; search with a shorter clip "
                "(e.g. ffmpeg -t 600 -i video -c copy clip.mkv)")
    try:
        # The worker holds the bytes; OpenCV (the fallback backend) would need a temporary file,
        # which the sandbox does not allow.
        with open_video(io.BytesIO(data), DEMUXERS[task.label], None, threads=1, backends=("pyav",)) as stream:
            if (stream.width or 0) * (stream.height or 0) > task.max_pixels:
                return QueryFeatures(task.mode, error=f"the query video's frames ({stream.width}x{stream.height}) "
                                                      f"exceed the {task.max_pixels} pixel budget")
            declared = stream.frame_count or ((stream.duration_s or 0) * (stream.fps or 0))
            if declared > task.max_frames:
                return QueryFeatures(task.mode, error=too_long)
            vpdq, tmk, cap = VpdqHasher(stream.fps), TmkAverager(), _FrameCap(task.max_frames)
            try:
                frames = scan(stream, cap, vpdq, tmk)
            except _TooLong:
                return QueryFeatures(task.mode, error=too_long)
    except VideoOpenError as exc:
        return QueryFeatures(task.mode, error=f"the query video could not be decoded: {exc}")
    except Exception as exc:  # noqa: BLE001 - a decode error mid-stream: the query is unusable
        return QueryFeatures(task.mode, error=f"the query video could not be decoded: {type(exc).__name__}: {exc}"[:300])
    return QueryFeatures(task.mode, vpdq=vpdq.features, tmk=tmk.feature(), frames=frames)


# --------------------------------------------------------------------------------- in the parent
def check_query_kind(file_type, mode: str) -> None:
    """Refuse a query of the wrong kind before anything decodes it (exit 2)."""
    if mode == "video":
        if file_type.kind != "video" or file_type.label not in DEMUXERS:
            raise UsageError(f"video mode needs a video query; the file is {file_type.label} ({file_type.kind})")
    elif file_type.kind != "image":
        raise UsageError(f"this search mode needs an image query; the file is {file_type.label} ({file_type.kind})")


def prepare_query(source: Path | bytes, file_type, mode: str, limits: QueryLimits = QueryLimits()) -> QueryFeatures:
    """Prepare a query (a file, or its bytes) in a sandboxed worker; ``VidpipeError`` (exit 1) with a
    one-line reason when it cannot be, ``UsageError`` (exit 2) when it is the wrong kind of file."""
    if mode not in MODES:
        raise UsageError(f"unknown search mode {mode!r}; choose from {', '.join(MODES)}")
    check_query_kind(file_type, mode)
    if isinstance(source, (bytes, bytearray)):
        task = QueryTask(mode, file_type.label, file_type.kind, data=bytes(source), max_pixels=limits.max_pixels,
                         max_frames=limits.max_frames)
        size = len(source)
    else:
        task = QueryTask(mode, file_type.label, file_type.kind, path=os.path.realpath(source),
                         max_pixels=limits.max_pixels,
                         max_frames=limits.max_frames)
        size = Path(source).stat().st_size
    timeout_s = limits.timeout_s + size / 50e6  # as ingest: reading and hashing at 50 MB/s
    sandbox = SandboxLimits(memory_bytes=limits.memory_bytes, base_timeout_s=timeout_s)
    results: dict = {}
    with SandboxPool({"query": prepare_query_task}, 1, sandbox) as pool:
        pool.submit("query", "query", task, timeout_s)
        while pool.pending:
            results.update(pool.results(max_wait_s=1.0))
    result = results.get("query")
    if isinstance(result, TaskFailure):
        raise VidpipeError(failure_message(result, limits, timeout_s))
    if not isinstance(result, QueryFeatures) or result.mode != mode:
        raise VidpipeError("the query could not be prepared (no answer from the sandbox)")
    if result.error:
        raise VidpipeError(result.error)
    return result


def failure_message(failure, limits: QueryLimits, timeout_s: float) -> str:
    """One line for a query whose preparation ended without a result."""
    reason = failure.reason
    if reason == "memory_limit":
        return (f"the query needs more than the {limits.memory_bytes // 1024**2} MB a decode may use "
                "(memory_limit); is it a decompression bomb?")
    if reason == "timeout":
        return f"decoding the query took longer than {timeout_s:.0f} s (timeout)"
    if reason.startswith("crash_signal"):
        return f"the query crashed its decoder ({reason}); the file is damaged or crafted"
    detail = f": {failure.detail}" if failure.detail else ""
    return f"the query could not be prepared ({reason}{detail})"
