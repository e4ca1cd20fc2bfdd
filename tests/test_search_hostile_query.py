"""A hostile search query is decoded in the sandbox: a decompression bomb or an endless video gives
exit 1 with one line (one JSON object with --json), quickly, with the search process's memory
bounded, from the command line and from the UI alike."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_cli

# The search process itself must stay small: the decode happens in a worker with a 2 GB cap.
PARENT_MAX_RSS_KB = 900 * 1024


def bomb_png(width: int, height: int) -> bytes:
    """An RGBA 16-bit PNG of zeros: ~1.5 MB on disk, 1.5 GB of pixels, ~4 GB to decode in Pillow.

    The zlib stream repeats one compressed block (identical after each full flush), so it is
    made in a fraction of a second; the Adler-32 of n zero bytes is ((n mod 65521) << 16) | 1."""
    row = b"\x00" * (1 + width * 8)
    rows_per_block = max(1, (1 << 22) // len(row))
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    comp.compress(row * rows_per_block)
    comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(row * rows_per_block) + comp.flush(zlib.Z_FULL_FLUSH)
    n, rest = divmod(height, rows_per_block)
    body = (b"\x78\xda" + block * n + comp.compress(row * rest) + comp.flush()
            + struct.pack(">I", ((height * len(row)) % 65521) << 16 | 1))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def long_mkv(frames: int, fps: int = 1000, size: int = 16, declare_duration: bool = True) -> bytes:
    """A Matroska video of ``frames`` identical 16x16 frames (one key frame, then copies of one
    P-frame packet); ``declare_duration=False`` writes it as a live stream, without a duration."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="matroska", options={} if declare_duration else {"live": "1"}) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": "1000000"}
        frame = av.VideoFrame.from_ndarray(np.zeros((size, size, 3), np.uint8), format="rgb24")
        packets = []
        for i in range(3):
            frame.pts = i
            packets += stream.encode(frame)
        key, repeat = packets[0], bytes(packets[-1])
        container.mux(key)
        for i in range(1, frames):
            packet = av.Packet(repeat)
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, key.time_base
            container.mux(packet)
    return out.getvalue()


@pytest.fixture(scope="module")
def small_case(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("hostile_query")
    evidence = root / "evidence"
    evidence.mkdir()
    Image.new("RGB", (96, 64), (200, 30, 30)).save(evidence / "red.png")
    run_cli("ingest", str(evidence), "--case", str(root / "case"), "--no-faces", "--no-scenes", "--json")
    return root / "case"


def _peak_rss_kb(pid: int) -> int | None:
    """VmHWM of the process itself: its own peak RSS since exec, children not included.

    (wait4's ru_maxrss is no use here: Linux carries the high-water mark across fork and exec, so a
    process started from a big test runner would report the runner's size.)"""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def search_measured(case: Path, query: Path, mode: str, tmp_path: Path) -> tuple[int, str, str, float, int]:
    """(exit code, stdout, stderr, seconds, peak RSS of the search process in KB)."""
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    started = time.monotonic()
    peak = 0
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen([sys.executable, "-m", "vidpipe", "search", "--case", str(case), "--query", str(query),
                                 "--mode", mode, "--json"], stdout=o, stderr=e, cwd=REPO)
        while proc.poll() is None:
            peak = max(peak, _peak_rss_kb(proc.pid) or 0)
            time.sleep(0.02)
    took = time.monotonic() - started
    return proc.returncode, out.read_text(), err.read_text(), took, peak


def assert_clean_error(code: int, stdout: str, stderr: str) -> dict:
    assert code == 1, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    error = json.loads(lines[0])
    assert error["code"] == 1 and "\n" not in error["error"]
    return error


@pytest.mark.parametrize("mode", ["near-dup", "face"])
def test_a_decompression_bomb_query_fails_cleanly_with_bounded_memory(small_case: Path, tmp_path: Path,
                                                                      mode: str) -> None:
    query = tmp_path / "bomb.png"
    query.write_bytes(bomb_png(14000, 14000))
    code, out, err, took, rss_kb = search_measured(small_case, query, mode, tmp_path)
    if code == 3:
        pytest.skip(f"face models are not installed here: {err.strip()[-200:]}")
    error = assert_clean_error(code, out, err)
    assert "memory" in error["error"], error
    assert rss_kb < PARENT_MAX_RSS_KB, f"the search process itself reached {rss_kb // 1024} MB"
    assert took < 60


def test_a_video_query_longer_than_the_cap_is_refused_before_decoding(small_case: Path, tmp_path: Path) -> None:
    query = tmp_path / "long.mkv"
    query.write_bytes(long_mkv(100_000))
    code, out, err, took, rss_kb = search_measured(small_case, query, "video", tmp_path)
    error = assert_clean_error(code, out, err)
    assert "longer than" in error["error"]
    assert took < 30 and rss_kb < PARENT_MAX_RSS_KB


def test_a_video_query_that_hides_its_length_is_stopped_at_the_cap(tmp_path: Path) -> None:
    from vidpipe.errors import VidpipeError
    from vidpipe.filetype import sniff
    from vidpipe.search.query_prep import QueryLimits, prepare_query

    query = tmp_path / "live.mkv"
    query.write_bytes(long_mkv(3000, declare_duration=False))
    file_type = sniff(query.read_bytes()[:4096])
    with pytest.raises(VidpipeError, match="longer than 2000 frames"):
        prepare_query(query, file_type, "video", QueryLimits(max_frames=2000))
    prepared = prepare_query(query, file_type, "video", QueryLimits(max_frames=5000))
    assert prepared.frames == 3000 and prepared.tmk is not None and prepared.vpdq


def test_a_ui_upload_goes_through_the_same_sandbox(small_case: Path) -> None:
    from ui.search_backend import run_search, save_query

    query, problem = save_query(small_case, bomb_png(14000, 14000), "near-dup")
    assert problem is None
    started = time.monotonic()
    result, message = run_search(small_case, query, "near-dup", 5)
    assert result is None and message.startswith("Search failed: ") and "memory" in message
    assert "\n" not in message and time.monotonic() - started < 60


def test_a_good_query_still_finds_its_copy(small_case: Path, tmp_path: Path) -> None:
    from PIL import Image

    query = tmp_path / "copy.jpg"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(query, quality=95)
    proc = run_cli("search", "--case", str(small_case), "--query", str(query), "--mode", "near-dup", "--json")
    result = json.loads(proc.stdout)
    assert result["results"] and result["results"][0]["media"]["path"].endswith("red.png")
