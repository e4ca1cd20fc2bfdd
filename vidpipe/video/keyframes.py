"""Keyframes: shot boundaries from PySceneDetect's detectors, fed frame by frame from our decoder.

Rule (deterministic): the first frame of every shot is a keyframe; inside a shot, a further frame
is taken once ``every_s`` seconds have passed since the shot's last keyframe; at most
``max_keyframes`` per video. When the duration is known the interval is widened up front
(``duration / max_keyframes``) so the cap is met by spacing, not by cutting off the end; if many
short shots still overflow it, the list is thinned evenly (interval frames first) and the
interval doubled. Keyframe pixels are upright (display orientation) because faces and scenes are
judged upright.

Decoding stays ours (PyAV over the item's bytes, see backends.py); only ``process_frame`` /
``post_process`` of a ``SceneDetector`` is used, on frames downscaled exactly as PySceneDetect's
``SceneManager`` does (long side to 256 px, cv2 linear), so cuts agree with its goldens.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from vidpipe.video.backends import Frame, VideoBackend

DEFAULT_EVERY_S = 2.0         # one keyframe per 2 s inside a shot (our default; faces/scenes need few)
DEFAULT_MAX_KEYFRAMES = 300   # per video: bounds memory (300 x 1280x720 RGB ~ 0.8 GB at worst) and DB rows
DEFAULT_MAX_SIDE = 1280       # keyframe pixels are scaled to this long side; None keeps full size
DETECTOR_MIN_WIDTH = 256      # scenedetect.scene_manager.DEFAULT_MIN_WIDTH (its auto-downscale target)
DETECTORS = ("adaptive", "content")


@dataclass(frozen=True)
class Keyframe:
    """A chosen frame: exact time, decode index, shot number (0-based), upright RGB pixels."""

    time_s: float
    frame_index: int
    shot_id: int
    rgb: np.ndarray = field(repr=False)
    reason: str = "interval"  # "shot_start" or "interval"


@dataclass
class KeyframeResult:
    """Keyframes plus what the pass saw: cut times, shot count, and whether it was capped/partial."""

    keyframes: list[Keyframe]
    cuts_s: list[float]
    cut_frames: list[int]      # decode indices of the first frame of each new shot
    shots: int
    frames_decoded: int
    capped: bool
    partial: bool
    interval_s: float
    detector: str


def make_detector(name: str):
    """A fresh PySceneDetect detector with its library defaults."""
    from scenedetect.detectors import AdaptiveDetector, ContentDetector  # lazy: heavy

    if name == "adaptive":
        return AdaptiveDetector()
    if name == "content":
        return ContentDetector()
    raise ValueError(f"unknown detector {name!r}; known: {DETECTORS}")


def detector_size(width: int, height: int) -> tuple[int, int]:
    """SceneManager's auto-downscale: factor = long side / 256, each side rounded."""
    longest = max(width, height)
    if longest < DETECTOR_MIN_WIDTH:
        return width, height
    factor = longest / float(DETECTOR_MIN_WIDTH)
    return max(1, round(width / factor)), max(1, round(height / factor))


class KeyframeSelector:
    """A fold over decoded frames (push each frame in order, then ``finish``).

    Detectors may report a cut some frames after it happened (``event_buffer_length``), so each
    frame is decided only once it is that many frames old; by then every cut at or before it is
    known, and the shot it belongs to is certain.
    """

    def __init__(self, nominal_fps: Fraction | float | None, duration_s: float | None = None, *,
                 every_s: float = DEFAULT_EVERY_S, max_keyframes: int = DEFAULT_MAX_KEYFRAMES,
                 detector: str | object = "adaptive", max_side: int | None = DEFAULT_MAX_SIDE) -> None:
        if max_keyframes < 1 or every_s <= 0:
            raise ValueError("max_keyframes must be >= 1 and every_s > 0")
        self._detector = make_detector(detector) if isinstance(detector, str) else detector
        self.detector_name = detector if isinstance(detector, str) else type(detector).__name__
        self._rate = Fraction(nominal_fps).limit_denominator(100_000) if nominal_fps else Fraction(30)
        self.every_s = every_s
        self.max_keyframes = max_keyframes
        self.max_side = max_side
        self.interval_s = every_s
        if duration_s and duration_s / max_keyframes > every_s:
            self.interval_s = duration_s / max_keyframes
        self._lag = int(getattr(self._detector, "event_buffer_length", 0)) + 1
        self._pending: deque[tuple[Frame, Fraction]] = deque()
        self._cut_times: list[Fraction] = []
        self._cuts: list[tuple[float, int]] = []
        self._selected: list[Keyframe] = []
        self._shot = -1
        self._last_kf_time: float | None = None
        self._last_tc = None
        self._size: tuple[int, int] | None = None
        self.frames_seen = 0
        self.capped = self.interval_s > every_s

    def push(self, frame: Frame) -> None:
        """Feed the next decoded frame (every frame, in presentation order)."""
        import cv2  # lazy: heavy
        from scenedetect.common import FrameTimecode, Timecode  # lazy: heavy

        if self._size is None:
            self._size = detector_size(frame.width, frame.height)
        if frame.pts is not None and frame.time_base:
            tc = FrameTimecode(Timecode(pts=max(0, frame.pts), time_base=frame.time_base), fps=self._rate)
        else:  # OpenCV or pts-less streams: the backend's time, to the microsecond
            tc = FrameTimecode(Timecode(pts=max(0, round(frame.time_s * 1_000_000)),
                                        time_base=Fraction(1, 1_000_000)), fps=self._rate)
        # The largest cost of a long video (bench.video_bench), and it stays: OpenCV's I420 -> BGR
        # (within 3 levels of swscale's, 3x faster) lost the AdaptiveDetector cut at frame 691 of
        # testvideo.mp4 (tests/test_video.py goldens).
        small = frame.image(None, "bgr24")
        if (frame.width, frame.height) != self._size:
            # Exactly SceneManager's resize (cv2 linear on full-size BGR); FFmpeg's area and
            # bilinear filters moved cuts on fades.mp4 and testvideo.mp4 (the detectors'
            # thresholds assume this aliasing).
            small = cv2.resize(small, self._size, interpolation=cv2.INTER_LINEAR)
        for cut in self._detector.process_frame(tc, small):
            self._cut_times.append(_exact(cut))
        self._last_tc = tc
        self.frames_seen += 1
        self._pending.append((frame, _exact(tc)))
        while len(self._pending) > self._lag:
            self._decide(*self._pending.popleft())

    def finish(self, partial: bool = False) -> KeyframeResult:
        """Flush the detector and the pending frames; return the keyframes in time order."""
        if self._last_tc is not None:
            self._cut_times.extend(_exact(cut) for cut in self._detector.post_process(self._last_tc))
        while self._pending:
            self._decide(*self._pending.popleft())
        if len(self._selected) > self.max_keyframes:
            self._thin()
        return KeyframeResult(self._selected, [t for t, _ in self._cuts], [i for _, i in self._cuts],
                              max(self._shot + 1, 0), self.frames_seen, self.capped, partial,
                              self.interval_s, self.detector_name)

    def _decide(self, frame: Frame, t: Fraction) -> None:
        # A cut reported at or before this frame's time starts a new shot here (a detector's cut
        # is normally one of the timecodes we passed; comparing times also covers derived ones).
        self._cut_times.sort()
        is_cut = False
        while self._cut_times and self._cut_times[0] <= t:
            self._cut_times.pop(0)
            is_cut = self._shot >= 0
        if self._shot < 0 or is_cut:
            self._shot += 1
            if is_cut:
                self._cuts.append((frame.time_s, frame.index))
            self._take(frame, "shot_start")
        elif self._last_kf_time is not None and frame.time_s - self._last_kf_time >= self.interval_s - 1e-6:
            self._take(frame, "interval")

    def _take(self, frame: Frame, reason: str) -> None:
        self._selected.append(Keyframe(frame.time_s, frame.index, self._shot, self._pixels(frame), reason))
        self._last_kf_time = frame.time_s
        if len(self._selected) > self.max_keyframes:
            self._thin()

    def _pixels(self, frame: Frame) -> np.ndarray:
        size = None
        if self.max_side and max(frame.width, frame.height) > self.max_side:
            scale = self.max_side / max(frame.width, frame.height)
            size = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
        return frame.image(size, "rgb24", upright=True)

    def _thin(self) -> None:
        """Halve the list deterministically: every other interval keyframe goes first; shot
        starts only when they alone exceed the cap. Future spacing doubles to match."""
        self.capped = True
        self.interval_s *= 2
        interval = [i for i, k in enumerate(self._selected) if k.reason == "interval"]
        drop = set(interval[1::2])
        if len(self._selected) - len(drop) > self.max_keyframes:
            drop = set(range(1, len(self._selected), 2))
        self._selected = [k for i, k in enumerate(self._selected) if i not in drop]
        while len(self._selected) > self.max_keyframes:  # only when max_keyframes is tiny
            self._selected = self._selected[::2]


def _exact(tc) -> Fraction:
    """A FrameTimecode's time as an exact fraction of seconds."""
    return Fraction(tc.pts) * Fraction(tc.time_base)


def extract_keyframes(stream: VideoBackend, *, every_s: float = DEFAULT_EVERY_S,
                      max_keyframes: int = DEFAULT_MAX_KEYFRAMES, detector: str = "adaptive",
                      max_side: int | None = DEFAULT_MAX_SIDE) -> KeyframeResult:
    """Decode ``stream`` once and return its keyframes (see the module docstring for the rule)."""
    selector = KeyframeSelector(stream.nominal_fps or stream.fps, stream.duration_s, every_s=every_s,
                                max_keyframes=max_keyframes, detector=detector, max_side=max_side)
    feed(selector, stream.frames())
    return selector.finish(partial=stream.partial)


def feed(selector: KeyframeSelector, frames: Iterable[Frame]) -> None:
    """Push every frame of ``frames`` into ``selector``."""
    for frame in frames:
        selector.push(frame)
