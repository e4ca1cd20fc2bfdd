"""vidpipe.testing, the test kit: its video generator makes what the budget tests and the video
bench rely on (duration, size, one shot per ``shot_s``), and vidpipe proper never imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import av
import numpy as np

from vidpipe.testing import make_checkerboard_video

REPO = Path(__file__).resolve().parent.parent


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_checkerboard_video_has_the_asked_duration_size_and_cuts(tmp_path: Path) -> None:
    path = make_checkerboard_video(tmp_path / "v.mp4", seconds=2.0, width=96, height=64, fps=10, shot_s=1.0)
    frames = _frames(path)
    assert len(frames) == 20 and frames[0].shape == (64, 96, 3)
    step = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(frames, frames[1:], strict=False)]
    # The one hard cut (frame 9 -> 10) changes the picture far more than any scroll step within a shot.
    assert int(np.argmax(step)) == 9 and step[9] > 3 * max(step[:9] + step[10:])


def test_the_same_arguments_write_the_same_frames(tmp_path: Path) -> None:
    a = _frames(make_checkerboard_video(tmp_path / "a.mp4", seconds=1.0, width=64, height=48, fps=5))
    b = _frames(make_checkerboard_video(tmp_path / "b.mp4", seconds=1.0, width=64, height=48, fps=5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_bench_long_video_uses_the_kit(tmp_path: Path) -> None:
    from bench.video_bench import make_long_video

    frames = _frames(make_long_video(tmp_path / "long.mp4", 0.5, 128, 72, fps=10))
    assert len(frames) == 5 and frames[0].shape == (72, 128, 3)


def test_vidpipe_proper_never_imports_the_test_kit() -> None:
    offenders = []
    for path in (REPO / "vidpipe").rglob("*.py"):
        if "testing" in path.relative_to(REPO / "vidpipe").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "vidpipe.testing" or n.startswith("vidpipe.testing.") for n in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders
