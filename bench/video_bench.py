"""Video ingest speed as x real time (seconds of video processed per wall-clock second), against a
named baseline measured in the same run on the same files.

Baseline ("opencv-every-frame-pdq"): OpenCV decodes every frame by path, each frame goes
BGR -> RGB -> PDQ (the same PDQHasher as ours). vidpipe: one PyAV decode pass feeding the
keyframe selector (PySceneDetect AdaptiveDetector, one keyframe per shot and per 2 s, cap 300)
and the vPDQ hasher (Meta's sampling: one frame per second), both folds over the same frames.

    python -m bench.video_bench [--data DIR] [--all] [--json] [--long-seconds S]

Long videos (issue 11): a generated 720p and 1080p H.264 (libx264 ultrafast, moving low-detail
pattern, a cut every 20 s; written to a temporary folder and deleted) of ``--long-seconds`` each,
through exactly the ingest worker's pass (keyframes + vPDQ + TMK, one decode thread), against the
baseline "pyav-decode-only" (the same decode with no analysis: the floor of any full-decode video
stage) in the same run. It prints x real time, the time a 1-hour video would take (extrapolated,
linear in duration), and whether the old size-based timeout and the new duration-based budget
(vidpipe.video.budget) cover it.

Default set: sample_media/video/clip.mp4 plus a spread of resolutions from the evaluation data;
``--all`` takes every video there (several minutes on two cores).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SET = ["threatexchange/sample-videos/chair-19-sd-bar.mp4",
               "threatexchange/sample-videos/doorknob-hd-no-bar.mp4",
               "threatexchange/sample-videos/test-padded-dimensions.mp4",
               "scenedetect/testvideo.mp4", "scenedetect/goldeneye-vfr-drop3.mp4",
               "scenedetect/counter.mp4"]
DEMUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}


def pick_videos(data: Path | None, everything: bool) -> list[Path]:
    videos = [REPO / "sample_media" / "video" / "clip.mp4"]
    if data is not None and (data / "videos").is_dir():
        if everything:
            videos += sorted(p for p in (data / "videos").rglob("*") if p.suffix.lower() in DEMUXERS)
        else:
            videos += [data / "videos" / rel for rel in DEFAULT_SET if (data / "videos" / rel).exists()]
    return [v for v in videos if v.exists()]


def ours(path: Path) -> tuple[float, float, dict]:
    """vidpipe's path. Returns (wall seconds, video seconds, counts)."""
    from vidpipe.video import KeyframeSelector, VpdqHasher, open_video_path, scan

    start = time.perf_counter()
    with open_video_path(str(path), DEMUXERS[path.suffix.lower()]) as stream:
        selector = KeyframeSelector(stream.nominal_fps or stream.fps, stream.duration_s)
        hasher = VpdqHasher(stream.fps)
        frames = scan(stream, selector, hasher)
        result = selector.finish(partial=stream.partial)
        duration = stream.duration_s or 0.0
    wall = time.perf_counter() - start
    return wall, duration, {"frames": frames, "keyframes": len(result.keyframes), "shots": result.shots,
                            "vpdq_frames": len(hasher.features)}


def baseline(path: Path) -> tuple[float, int]:
    """OpenCV decodes every frame; each is PDQ-hashed. Returns (wall seconds, frames)."""
    import cv2

    from vidpipe.extract.hashers import PDQHasher

    hasher = PDQHasher()
    start = time.perf_counter()
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        hasher.compute(Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        frames += 1
    cap.release()
    return time.perf_counter() - start, frames


def make_long_video(path: Path, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    """A moving low-detail checkerboard (64 px tiles) with a colour cut every 20 s (libx264 ultrafast)."""
    from vidpipe.testing import make_checkerboard_video

    return make_checkerboard_video(path, seconds, width, height, fps, shot_s=20.0, tile=64, tile_growth=0,
                                   shift=4, colour_range=(20, 235), crf=30)


def ingest_pass(path: Path) -> tuple[float, float, int]:
    """The ingest worker's video pass (video_task.process_video's folds, one decode thread):
    (wall seconds, video seconds, keyframes)."""
    from vidpipe.pipeline.video_task import INGEST_MAX_KEYFRAMES, KEYFRAME_EVERY_S
    from vidpipe.video import KeyframeSelector, VpdqHasher, open_video_path, scan
    from vidpipe.video.tmk import TmkAverager

    start = time.perf_counter()
    with open_video_path(str(path), "mp4", threads=1) as stream:
        selector = KeyframeSelector(stream.nominal_fps or stream.fps, stream.duration_s, every_s=KEYFRAME_EVERY_S,
                                    max_keyframes=INGEST_MAX_KEYFRAMES)
        scan(stream, selector, VpdqHasher(stream.fps), TmkAverager())
        keyframes = len(selector.finish().keyframes)
        duration = stream.duration_s or 0.0
    return time.perf_counter() - start, duration, keyframes


def decode_only(path: Path) -> float:
    """Baseline "pyav-decode-only": every frame decoded, nothing computed (one decode thread)."""
    from vidpipe.video import open_video_path

    start = time.perf_counter()
    with open_video_path(str(path), "mp4", threads=1) as stream:
        for _ in stream.frames():
            pass
    return time.perf_counter() - start


def long_video_rows(seconds: float, emit: bool) -> list[dict]:
    """x real time of the ingest pass on generated long 720p and 1080p videos, vs decode only."""
    import tempfile

    from vidpipe.video.budget import soft_budget_s

    rows = []
    with tempfile.TemporaryDirectory(prefix="vidpipe-bench-") as tmp:
        for width, height in ((1280, 720), (1920, 1080)):
            path = make_long_video(Path(tmp) / f"long_{height}p.mp4", seconds, width, height)
            size = path.stat().st_size
            base_wall = decode_only(path)
            wall, duration, keyframes = ingest_pass(path)
            hour = 3600.0 * wall / duration
            budget_hour = soft_budget_s(3600.0, width, height, 30.0, 60.0)
            row = {"resolution": f"{height}p", "duration_s": round(duration, 1), "bytes": size,
                   "ours_s": round(wall, 2), "ours_x_realtime": round(duration / wall, 2),
                   "baseline": "pyav-decode-only", "baseline_x_realtime": round(duration / base_wall, 2),
                   "keyframes": keyframes, "one_hour_s_extrapolated": round(hour, 1),
                   "one_hour_budget_s": round(budget_hour, 1),
                   "old_size_timeout_s_for_one_hour": round(60.0 + size * 3600.0 / duration / 50e6, 1)}
            rows.append(row)
            if emit:
                print(f"long {height}p  {duration:6.1f} s video  ours {wall:6.2f} s ({row['ours_x_realtime']:5.1f}x real "
                      f"time)  baseline pyav-decode-only {base_wall:5.2f} s ({row['baseline_x_realtime']:5.1f}x)  "
                      f"-> 1 h of video: ~{hour:5.0f} s (extrapolated); budget {budget_hour:5.0f} s "
                      f"{'covers it' if budget_hour >= hour else 'DOES NOT cover it'}; old size-based timeout "
                      f"{row['old_size_timeout_s_for_one_hour']:.0f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("VIDPIPE_EVAL_DATA", REPO.parent / "shared" / "data"))
    ap.add_argument("--data", type=Path, default=default_data, help="evaluation data root (../shared/data)")
    ap.add_argument("--all", action="store_true", help="every video in the evaluation data")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--long-seconds", type=float, default=60.0,
                    help="length of each generated long video (720p, 1080p); 0 skips them")
    args = ap.parse_args(argv)
    data = args.data if args.data.is_dir() else None
    rows = []
    for path in pick_videos(data, args.all):
        wall_ours, duration, counts = ours(path)
        wall_base, frames = baseline(path)
        rows.append({"video": str(path), "duration_s": round(duration, 3), "ours_s": round(wall_ours, 3),
                     "baseline_s": round(wall_base, 3), "baseline_frames": frames, **counts})
        if not args.json:
            print(f"{path.name:34s} {duration:7.2f} s video  ours {wall_ours:6.2f} s ({duration / wall_ours:6.1f}x)"
                  f"  baseline {wall_base:6.2f} s ({duration / wall_base:5.1f}x)  keyframes {counts['keyframes']:3d}"
                  f"  vpdq {counts['vpdq_frames']:3d}", flush=True)
    long_rows = long_video_rows(args.long_seconds, not args.json) if args.long_seconds > 0 else []
    total = sum(r["duration_s"] for r in rows)
    t_ours = sum(r["ours_s"] for r in rows)
    t_base = sum(r["baseline_s"] for r in rows)
    summary = {"videos": len(rows), "video_seconds": round(total, 2),
               "ours_x_realtime": round(total / t_ours, 2) if t_ours else None,
               "baseline": "opencv-every-frame-pdq",
               "baseline_x_realtime": round(total / t_base, 2) if t_base else None,
               "speedup": round(t_base / t_ours, 2) if t_ours else None, "rows": rows, "long_videos": long_rows}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"\n{len(rows)} videos, {total:.1f} s of video: vidpipe keyframes+vPDQ "
              f"{summary['ours_x_realtime']}x real time; baseline (OpenCV every frame + PDQ) "
              f"{summary['baseline_x_realtime']}x; vidpipe is {summary['speedup']}x the baseline")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
