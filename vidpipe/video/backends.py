"""Video decoding behind one reader interface (cf. PySceneDetect's ``VideoStream`` and ``backends/``).

A backend opens a *binary file object* with an *explicit demuxer* chosen from the sniffed
content, never from FFmpeg's own probing: a playlist renamed ``.mp4`` must not be opened as HLS
or concat, and nothing here may open another URL. PyAV is the first choice (exact timestamps,
file objects, archive members without a copy); OpenCV is the fallback and needs a path, so an
archive member is copied to a bounded temporary file first.

Times are exact: ``Frame.time_s`` is ``(pts - stream start) * time_base`` computed as a fraction,
so it is right under a variable frame rate. Frames convert to RGB lazily, so a caller that
samples (keyframes, vPDQ) pays the colour conversion only for the frames it keeps.
"""

from __future__ import annotations

import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import BinaryIO, ClassVar

import numpy as np

from vidpipe.filetype import sniff
from vidpipe.sources.opener import open_file_readonly

# FFmpeg demuxer names we accept; the ISO-BMFF family shares one demuxer in FFmpeg (mov.c).
ALLOWED_DEMUXERS = frozenset({"mp4", "mov", "3gp", "3g2", "matroska", "avi", "mpegts", "mpeg", "flv", "asf"})
_ISOBMFF = frozenset({"mp4", "mov", "3gp", "3g2"})
# PySceneDetect backends/pyav.py stops after this many consecutive undecodable packets; so do we.
MAX_CONSECUTIVE_DECODE_ERRORS = 10
# An archive member copied for OpenCV may not exceed the archive walker's per-member cap
# (vidpipe/sources/limits.py: max_member_bytes).
DEFAULT_MAX_TEMP_BYTES = 4 * 1024**3
# Largest frame we convert: 8192 x 8192 covers DCI 8K (8192 x 4320); a forged size beyond it would
# make one RGB frame cost gigabytes.
MAX_FRAME_PIXELS = 8192 * 8192
OPEN_TIMEOUT_S = 10.0  # FFmpeg interrupt callback for open and each read (vidpipe/pipeline/video_task.py)


class VideoOpenError(Exception):
    """The video cannot be opened; ``reason`` is a short machine-readable cause."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class VideoDecodeError(Exception):
    """Decoding failed before any frame came out."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


Converter = Callable[[tuple[int, int] | None, str], np.ndarray]


class Frame:
    """One decoded frame: exact presentation time, output index, pixels on demand.

    ``rgb`` is the full frame in coded orientation (H, W, 3, uint8), converted on first use.
    ``image(size, fmt, upright)`` gives a resized, BGR or display-oriented copy without
    converting the full frame first where the backend can scale while converting.
    """

    __slots__ = ("time_s", "index", "pts", "time_base", "exact_time", "width", "height", "rotation",
                 "_convert", "_rgb")

    def __init__(self, time_s: float, index: int, width: int, height: int, convert: Converter, *,
                 pts: int | None = None, time_base: Fraction | None = None, exact_time: bool = True,
                 rotation: int = 0) -> None:
        self.time_s = time_s
        self.index = index
        self.pts = pts
        self.time_base = time_base
        self.exact_time = exact_time
        self.width = width
        self.height = height
        self.rotation = rotation  # degrees clockwise that make the frame upright
        self._convert = convert
        self._rgb: np.ndarray | None = None

    @property
    def rgb(self) -> np.ndarray:
        """Full-size RGB, coded orientation."""
        if self._rgb is None:
            self._rgb = self._convert(None, "rgb24")
        return self._rgb

    def image(self, size: tuple[int, int] | None = None, fmt: str = "rgb24", upright: bool = False) -> np.ndarray:
        """The frame as ``fmt`` ("rgb24" or "bgr24"), resized to ``size`` = (width, height) in coded
        orientation, then turned upright when asked."""
        if size is None and fmt == "rgb24":
            arr = self.rgb
        else:
            arr = self._convert(size, fmt)
        if upright and self.rotation:
            arr = np.ascontiguousarray(np.rot90(arr, k=-(self.rotation // 90)))
        return arr

    def __repr__(self) -> str:
        return f"Frame(index={self.index}, time_s={self.time_s:.6f}, {self.width}x{self.height})"


class VideoBackend(ABC):
    """A video opened read-only from local bytes. Properties are known after construction;
    ``frames()`` decodes from the start each time it is called.

    Constructor contract (every registered backend): ``(fileobj, demuxer, path=None, *,
    threads=0, tmp_dir=None, max_temp_bytes=...)``, raising ``VideoOpenError``.

    After a ``frames()`` pass, ``decode_errors`` counts skipped packets and ``partial`` says the
    pass ended early (truncated file, too many bad packets, fewer frames than the container
    declared)."""

    BACKEND_NAME: ClassVar[str]

    def __init__(self) -> None:
        self.decode_errors = 0
        self.partial = False
        self.frames_decoded = 0
        self.last_error: str | None = None
        self._owned: list = []  # file objects this backend must close

    @classmethod
    @abstractmethod
    def available(cls) -> bool:
        """Whether the backend's library imports."""

    # Properties (None when the container does not say).
    duration_s: float | None
    fps: float | None            # average frame rate
    nominal_fps: Fraction | None  # FFmpeg's r_frame_rate guess; PySceneDetect numbers frames with it
    frame_count: int | None
    width: int
    height: int
    rotation: int                # degrees clockwise to display upright: 0, 90, 180, 270
    codec: str | None
    container: str | None
    creation_time: str | None
    start_time_s: float          # presentation time of the stream start; Frame.time_s is relative to it

    @abstractmethod
    def frames(self, step_s: float | None = None, max_frames: int | None = None) -> Iterator[Frame]:
        """Decode from the start. With ``step_s``, yield at most one frame per ``step_s`` seconds
        (the first frame at or after each multiple of ``step_s``); all frames are still decoded."""

    def close(self) -> None:
        """Release files; idempotent."""
        while self._owned:
            self._owned.pop().close()

    def __enter__(self) -> VideoBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict:
        """The properties as a plain dict (for the database and JSON)."""
        return {"backend": self.BACKEND_NAME, "container": self.container, "codec": self.codec,
                "width": self.width, "height": self.height, "rotation": self.rotation,
                "fps": round(self.fps, 6) if self.fps else None,
                "frame_count": self.frame_count,
                "duration_s": round(self.duration_s, 6) if self.duration_s is not None else None,
                "creation_time": self.creation_time}


class _Stepper:
    """Keeps at most one frame per ``step_s`` on a fixed time grid (0, step, 2*step, ...)."""

    def __init__(self, step_s: float | None) -> None:
        self.step = step_s if step_s and step_s > 0 else None
        self.next_t = float("-inf")

    def keep(self, t: float) -> bool:
        if self.step is None:
            return True
        if t + 1e-9 < self.next_t:
            return False
        self.next_t = (int((t + 1e-9) / self.step) + 1) * self.step
        return True


def _rotation_cw(display_angle_ccw: float | int | None, rotate_tag: str | None) -> int:
    """Normalise FFmpeg's display-matrix angle (counter-clockwise) or the legacy ``rotate`` tag
    (clockwise) to 0/90/180/270 degrees clockwise."""
    if display_angle_ccw:
        return int(round(-float(display_angle_ccw) / 90.0)) * 90 % 360
    if rotate_tag:
        try:
            return int(round(float(rotate_tag) / 90.0)) * 90 % 360
        except ValueError:
            return 0
    return 0


# --------------------------------------------------------------------------------------------
# PyAV


class PyAVBackend(VideoBackend):
    """FFmpeg through PyAV over a Python file object with a forced demuxer."""

    BACKEND_NAME = "pyav"

    def __init__(self, fileobj: BinaryIO, demuxer: str, path: str | None = None, *,
                 threads: int = 0, tmp_dir: str | None = None, max_temp_bytes: int = DEFAULT_MAX_TEMP_BYTES) -> None:
        super().__init__()  # path, tmp_dir and max_temp_bytes are unused: PyAV reads the file object
        if demuxer not in ALLOWED_DEMUXERS:
            raise VideoOpenError("format_not_allowed", demuxer)
        if not self.available():
            raise VideoOpenError("missing_dependency", "av")
        self._fileobj = fileobj
        self._demuxer = demuxer
        self._threads = threads
        _require_bytes(fileobj)
        import av  # lazy: heavy

        container = self._open_container()
        try:
            streams = [s for s in container.streams if s.type == "video"]
            if not streams:
                raise VideoOpenError("no_video_stream")
            s = streams[0]
            self._stream_index = s.index
            cc = s.codec_context
            self.width, self.height = int(cc.width or 0), int(cc.height or 0)
            self.codec = cc.name
            self.container = container.format.name
            avg = s.average_rate
            self.fps = float(avg) if avg else None
            guessed = s.guessed_rate or s.base_rate
            self.nominal_fps = Fraction(guessed) if guessed else (Fraction(avg) if avg else None)
            self.frame_count = int(s.frames) if s.frames else None
            self._time_base = Fraction(s.time_base) if s.time_base else None
            self._start_pts = s.start_time or 0
            self.start_time_s = float(self._start_pts * self._time_base) if self._time_base else 0.0
            if s.duration and self._time_base:
                self.duration_s = float(s.duration * self._time_base)
            elif container.duration:
                self.duration_s = container.duration / 1_000_000
            else:
                self.duration_s = None
            self.creation_time = s.metadata.get("creation_time") or container.metadata.get("creation_time")
            rotate_tag = s.metadata.get("rotate")
            first = self._first_frame(container, s)
        except av.FFmpegError as exc:
            raise VideoOpenError("container_error", str(exc)[:300]) from exc
        finally:
            container.close()
        if first is None:
            raise VideoOpenError("no_decodable_frame")
        if max(self.width * self.height, first.width * first.height) > MAX_FRAME_PIXELS:
            raise VideoOpenError("frame_too_large", f"{first.width}x{first.height}")
        if not self.width or not self.height:
            self.width, self.height = first.width, first.height
        self.rotation = _rotation_cw(getattr(first, "rotation", 0), rotate_tag)

    @classmethod
    def available(cls) -> bool:
        try:
            import av  # noqa: F401  # lazy: heavy
        except ImportError:
            return False
        return True

    def _open_container(self):
        import av  # lazy: heavy

        self._fileobj.seek(0)
        try:
            # An explicit format over a file object: FFmpeg never probes (no HLS, no concat) and
            # has no URL to resolve; the whitelist is a second lock on nested opens.
            return av.open(self._fileobj, mode="r", format=self._demuxer,
                           options={"protocol_whitelist": "file"}, timeout=OPEN_TIMEOUT_S,
                           metadata_errors="replace")
        except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
            raise VideoOpenError("container_error", str(exc)[:300]) from exc

    def _first_frame(self, container, stream):
        import av  # lazy: heavy

        errors = 0
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    return frame
            except av.FFmpegError:
                errors += 1
                if errors >= MAX_CONSECUTIVE_DECODE_ERRORS:
                    return None
        return None

    def frames(self, step_s: float | None = None, max_frames: int | None = None) -> Iterator[Frame]:
        import av  # lazy: heavy

        self.decode_errors, self.partial, self.frames_decoded = 0, False, 0
        container = self._open_container()
        try:
            stream = container.streams[self._stream_index]
            if self._threads != 1:
                stream.thread_type = "AUTO"  # frame threads: output is identical, only faster
                stream.thread_count = self._threads
            stepper = _Stepper(step_s)
            for frame in self._decode(container, stream, av):
                index = self.frames_decoded
                self.frames_decoded += 1
                out = self._wrap(frame, index)
                if stepper.keep(out.time_s):
                    yield out
                if max_frames is not None and self.frames_decoded >= max_frames:
                    self.partial = True
                    return
        finally:
            container.close()
        if self.frames_decoded == 0:
            raise VideoDecodeError("no_frames", f"{self.decode_errors} undecodable packets")
        if self.frame_count and self.frames_decoded < self.frame_count:
            self.partial = True

    def _decode(self, container, stream, av) -> Iterator:
        """Frames in presentation order; a bad packet is skipped and counted, a broken read ends
        the pass (partial) after flushing what the decoder holds."""
        demux = container.demux(stream)
        consecutive = 0
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return  # the demuxer's final empty packet has already flushed the decoder
            except (av.FFmpegError, OSError) as exc:
                self.partial = True
                self.decode_errors += 1
                self.last_error = str(exc)[:300]
                break
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                self.decode_errors += 1
                consecutive += 1
                self.last_error = str(exc)[:300]
                if consecutive >= MAX_CONSECUTIVE_DECODE_ERRORS:
                    self.partial = True
                    break
                continue
            consecutive = 0
            for frame in frames:
                if frame.width * frame.height > MAX_FRAME_PIXELS:  # a mid-stream size change
                    self.decode_errors += 1
                    continue
                yield frame
        try:
            yield from stream.codec_context.decode(None)
        except av.FFmpegError:
            return

    def _wrap(self, frame, index: int) -> Frame:
        rotation = self.rotation
        if frame.pts is not None and frame.time_base:
            tb = Fraction(frame.time_base)
            start = self._start_pts
            if start and self._time_base and self._time_base != tb:
                start = int(start * self._time_base / tb)
            time_s, exact = float((frame.pts - start) * tb), True
            pts = frame.pts - start
        else:
            rate = self.fps or float(self.nominal_fps or 0) or 1.0
            time_s, exact, pts, tb = index / rate, False, None, None

        def convert(size: tuple[int, int] | None, fmt: str, _f=frame) -> np.ndarray:
            if size is None:
                return _f.to_ndarray(format=fmt)
            return _f.reformat(width=size[0], height=size[1], format=fmt, interpolation="AREA").to_ndarray()

        return Frame(time_s, index, frame.width, frame.height, convert, pts=pts, time_base=tb,
                     exact_time=exact, rotation=rotation)


def _require_bytes(fileobj: BinaryIO) -> None:
    fileobj.seek(0)
    if not fileobj.read(1):
        raise VideoOpenError("empty")
    fileobj.seek(0)


# --------------------------------------------------------------------------------------------
# OpenCV


_CV_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_CV_ENV_LOCK = threading.Lock()


class OpenCVBackend(VideoBackend):
    """OpenCV's FFmpeg capture: a fallback when PyAV is missing or cannot decode a file.

    OpenCV opens by path and would let FFmpeg probe the format, so we (1) check the header
    against the requested demuxer ourselves and (2) pass ``input_format`` and a ``file``-only
    protocol whitelist through ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` for the duration of the open.
    Times come from ``CAP_PROP_POS_MSEC`` (millisecond precision, not exact)."""

    BACKEND_NAME = "opencv"

    def __init__(self, fileobj: BinaryIO, demuxer: str, path: str | None = None, *,
                 threads: int = 0, tmp_dir: str | None = None, max_temp_bytes: int = DEFAULT_MAX_TEMP_BYTES) -> None:
        super().__init__()  # threads is unused: OpenCV picks its own
        self._tmp_path: str | None = None
        if demuxer not in ALLOWED_DEMUXERS:
            raise VideoOpenError("format_not_allowed", demuxer)
        if not self.available():
            raise VideoOpenError("missing_dependency", "cv2")
        _require_bytes(fileobj)
        head = fileobj.read(4096)
        fileobj.seek(0)
        if not header_matches(head, demuxer):
            raise VideoOpenError("format_mismatch", f"content is not {demuxer}")
        self._demuxer = demuxer
        if path is None:
            self._tmp_path = _copy_bounded(fileobj, tmp_dir, max_temp_bytes)
            path = self._tmp_path
        self._path = path
        try:
            cap = self._open_capture()
        except VideoOpenError:
            self.close()
            raise
        import cv2  # lazy: heavy

        try:
            self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and fps > 0 else None
            self.nominal_fps = Fraction(self.fps).limit_denominator(1001) if self.fps else None
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.frame_count = count if count > 0 else None
            self.duration_s = self.frame_count / self.fps if self.frame_count and self.fps else None
            fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
            self.codec = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ") or None
            self.container = demuxer
            self.creation_time = None
            self.start_time_s = 0.0
            self.rotation = int(cap.get(getattr(cv2, "CAP_PROP_ORIENTATION_META", -1)) or 0) % 360
            ok, _ = cap.read()
        finally:
            cap.release()
        if not ok:
            self.close()
            raise VideoOpenError("no_decodable_frame")

    @classmethod
    def available(cls) -> bool:
        try:
            import cv2  # noqa: F401  # lazy: heavy
        except ImportError:
            return False
        return True

    def _open_capture(self):
        import cv2  # lazy: heavy

        # FFmpeg's format name for the ISO-BMFF family is "mov" or "mp4"; both select mov.c.
        fmt = "mp4" if self._demuxer in _ISOBMFF else self._demuxer
        with _CV_ENV_LOCK:
            saved = os.environ.get(_CV_ENV)
            os.environ[_CV_ENV] = f"input_format;{fmt}|protocol_whitelist;file"
            try:
                cap = cv2.VideoCapture(self._path, cv2.CAP_FFMPEG)
            finally:
                if saved is None:
                    os.environ.pop(_CV_ENV, None)
                else:
                    os.environ[_CV_ENV] = saved
        if not cap.isOpened():
            raise VideoOpenError("container_error", "OpenCV could not open the file")
        # Frames in coded orientation, like the PyAV backend; Frame.image(upright=True) rotates.
        if hasattr(cv2, "CAP_PROP_ORIENTATION_AUTO"):
            cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
        return cap

    def frames(self, step_s: float | None = None, max_frames: int | None = None) -> Iterator[Frame]:
        import cv2  # lazy: heavy

        self.decode_errors, self.partial, self.frames_decoded = 0, False, 0
        cap = self._open_capture()
        stepper = _Stepper(step_s)
        try:
            while True:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                index = self.frames_decoded
                self.frames_decoded += 1
                msec = cap.get(cv2.CAP_PROP_POS_MSEC)
                exact = msec is not None and msec >= 0
                time_s = msec / 1000.0 if exact else index / (self.fps or 1.0)
                if not stepper.keep(time_s):
                    continue
                h, w = bgr.shape[:2]

                def convert(size, fmt, _b=bgr):
                    img = _b if size is None else cv2.resize(_b, size, interpolation=cv2.INTER_AREA)
                    return img if fmt == "bgr24" else np.ascontiguousarray(img[:, :, ::-1])

                yield Frame(time_s, index, w, h, convert, exact_time=False, rotation=self.rotation)
                if max_frames is not None and self.frames_decoded >= max_frames:
                    self.partial = True
                    return
        finally:
            cap.release()
        if self.frames_decoded == 0:
            raise VideoDecodeError("no_frames")
        if self.frame_count and self.frames_decoded < self.frame_count:
            self.partial = True

    def close(self) -> None:
        if getattr(self, "_tmp_path", None):
            try:
                os.unlink(self._tmp_path)
            except OSError:
                pass
            self._tmp_path = None
        super().close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def _copy_bounded(fileobj: BinaryIO, tmp_dir: str | None, cap: int) -> str:
    """Copy an archive member to a private temporary file, refusing more than ``cap`` bytes."""
    fd, tmp = tempfile.mkstemp(prefix="vidpipe-video-", suffix=".bin", dir=tmp_dir)
    total = 0
    try:
        with os.fdopen(fd, "wb") as out:
            fileobj.seek(0)
            while chunk := fileobj.read(min(1024 * 1024, cap + 1 - total)):
                total += len(chunk)
                if total > cap:
                    raise VideoOpenError("too_large", f"more than {cap} bytes")
                out.write(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    fileobj.seek(0)
    return tmp


def header_matches(head: bytes, demuxer: str) -> bool:
    """Does the content's magic number agree with ``demuxer``? (vidpipe.filetype's sniffer)."""
    label = sniff(head).label
    expected = {"MP4": _ISOBMFF, "MOV": _ISOBMFF, "3GP": _ISOBMFF, "3G2": _ISOBMFF,
                "MKV": {"matroska"}, "AVI": {"avi"}, "MPEG-TS": {"mpegts"}, "MPEG-PS": {"mpeg"},
                "FLV": {"flv"}, "ASF": {"asf"}}.get(label, set())
    return demuxer in expected


# --------------------------------------------------------------------------------------------
# Registry and opening with fallback


BACKENDS: dict[str, type[VideoBackend]] = {cls.BACKEND_NAME: cls for cls in (PyAVBackend, OpenCVBackend)}
# PyAV's verdict is final for these: another FFmpeg build would only say the same.
_NO_FALLBACK = {"empty", "format_not_allowed", "no_video_stream", "too_large", "frame_too_large"}


def open_video(fileobj: BinaryIO, demuxer: str, path: str | None = None, *,
               backends: tuple[str, ...] = ("pyav", "opencv"), tmp_dir: str | None = None,
               max_temp_bytes: int = DEFAULT_MAX_TEMP_BYTES, threads: int = 0) -> VideoBackend:
    """Open a video from a seekable binary file object, trying ``backends`` in order.

    ``demuxer`` comes from sniffing the content (see vidpipe.pipeline.video_task.DEMUXERS).
    ``path`` is the on-disk file when the item is one (OpenCV opens it directly); None for an
    archive member (OpenCV then reads a bounded temporary copy). ``threads`` is PyAV's decode
    thread count (0 = FFmpeg's choice; set 1 when many worker processes already share the CPUs).
    Raises ``VideoOpenError`` with the first backend's reason when none can open it.
    """
    if demuxer not in ALLOWED_DEMUXERS:
        raise VideoOpenError("format_not_allowed", demuxer)
    first_error: VideoOpenError | None = None
    for name in backends:
        cls = BACKENDS[name]
        if not cls.available():
            first_error = first_error or VideoOpenError("missing_dependency", name)
            continue
        try:
            return cls(fileobj, demuxer, path, threads=threads, tmp_dir=tmp_dir, max_temp_bytes=max_temp_bytes)
        except VideoOpenError as exc:
            if first_error is None or first_error.reason == "missing_dependency":
                first_error = exc
            if exc.reason in _NO_FALLBACK:
                break
    raise first_error or VideoOpenError("no_backend")


def open_video_path(path: str, demuxer: str, **kw) -> VideoBackend:
    """Convenience for tools and tests: open a local file read-only by path.

    The returned backend owns the file object and closes it with ``close()``."""
    fileobj = open_file_readonly(os.fsencode(path))
    try:
        backend = open_video(fileobj, demuxer, path, **kw)
    except BaseException:
        fileobj.close()
        raise
    backend._owned.append(fileobj)
    return backend


__all__ = ["ALLOWED_DEMUXERS", "BACKENDS", "Frame", "OpenCVBackend", "PyAVBackend", "VideoBackend",
           "VideoDecodeError", "VideoOpenError", "header_matches", "open_video", "open_video_path"]
