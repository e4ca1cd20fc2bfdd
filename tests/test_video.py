"""The video layer: backends, keyframes by shot, vPDQ against Meta's reference outputs.

Evaluation data (../shared/data/videos): ThreatExchange's near-duplicate clips with Meta's
expected vPDQ files, PySceneDetect's test videos with its golden cut lists. Generated clips
(PyAV) cover variable frame rate and hostile inputs.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vidpipe.video import (
    KeyframeSelector,
    VideoDecodeError,
    VideoOpenError,
    VpdqHasher,
    extract_keyframes,
    match_vpdq,
    open_video,
    open_video_path,
    scan,
)
from vidpipe.video.vpdq import dumps, loads

av = pytest.importorskip("av")


def _videos(eval_data: Path) -> Path:
    return eval_data / "videos"


def _family(name: str) -> str:
    return name.split("-")[0]


# --------------------------------------------------------------------------------------------
# ThreatExchange: one decode per clip feeds both hashers (PDQHasher as for stills, and the
# full-resolution variant that mirrors Meta's vpdq), at Meta's default of one frame per second.


@pytest.fixture(scope="module")
def te_hashes(eval_data):
    root = _videos(eval_data) / "threatexchange"
    with open(root / "labels.csv", newline="") as fh:
        labels = {Path(r["file"]).stem: r["family"] for r in csv.DictReader(fh)}
    out = {}
    for name in sorted(labels):
        with open_video_path(str(root / "sample-videos" / f"{name}.mp4"), "mp4") as stream:
            std, full = VpdqHasher(stream.fps), VpdqHasher(stream.fps, full_resolution=True)
            scan(stream, std, full)
        out[name] = {"family": labels[name], "std": std.features, "full": full.features,
                     "meta": loads((root / "vpdq-sample-hashes" / f"{name}.txt").read_text())}
    return out


def _matches(hashes: dict[str, list]) -> set[frozenset]:
    names = sorted(hashes)
    return {frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1:]
            if match_vpdq(hashes[a], hashes[b]).is_match()}


@pytest.mark.evaldata
def test_vpdq_match_matrix_threatexchange(te_hashes):
    ours = _matches({n: v["std"] for n, v in te_hashes.items()})
    ours_full = _matches({n: v["full"] for n, v in te_hashes.items()})
    # Meta's own per-frame hashes, sampled at the same frames (filehasher.cpp frame_mod = 30).
    sampled = {n: {f.frame_number for f in v["std"]} for n, v in te_hashes.items()}
    reference = _matches({n: [f for f in v["meta"] if f.frame_number in sampled[n]] for n, v in te_hashes.items()})
    fam = {n: v["family"] for n, v in te_hashes.items()}
    cross = [p for p in ours | ours_full if len({fam[n] for n in p}) > 1]
    chair_core = ["chair-20-sd-bar", "chair-22-sd-grey-bar", "chair-22-sd-sepia-bar",
                  "chair-22-with-small-logo-bar", "chair-orig-22-sd-bar"]
    print(f"\nvPDQ matches at 1 fps: ours {len(ours)} pairs, full-res {len(ours_full)}, Meta reference "
          f"{len(reference)}; cross-family {len(cross)}")
    for pair in sorted(tuple(sorted(p)) for p in ours):
        print("  match:", *pair)
    assert not cross, f"cross-family vPDQ matches: {cross}"
    assert ours == reference and ours_full == reference, "our match decisions differ from Meta's hashes"
    assert all(frozenset((a, b)) in ours for i, a in enumerate(chair_core) for b in chair_core[i + 1:])
    assert frozenset(("pattern-sd-grey-bar", "pattern-sd-with-small-logo-bar")) in ours


@pytest.mark.evaldata
def test_vpdq_per_frame_against_meta(te_hashes):
    stats = {}
    for variant in ("std", "full"):
        dists, worst_ts = [], 0.0
        for v in te_hashes.values():
            meta = {f.frame_number: f for f in v["meta"]}
            for f in v[variant]:
                ref = meta[f.frame_number]
                worst_ts = max(worst_ts, abs(f.timestamp_s - ref.timestamp_s))
                if ref.quality >= 50:  # Meta never compares frames below quality 50
                    dists.append((int(f.pdq_hex, 16) ^ int(ref.pdq_hex, 16)).bit_count())
        stats[variant] = (float(np.mean(dists)), int(np.max(dists)), len(dists), worst_ts)
    print(f"\nPDQ bits from Meta's vPDQ (quality>=50): PDQHasher mean {stats['std'][0]:.2f} max {stats['std'][1]}; "
          f"full-resolution mean {stats['full'][0]:.2f} max {stats['full'][1]}; n={stats['std'][2]}")
    assert stats["std"][2] >= 150
    assert stats["std"][0] <= 10.0   # 512 px pre-downsampling (as for stills) costs ~8 bits
    assert stats["full"][0] <= 3.0   # same pixels as Meta: only decoder/colour rounding differs
    assert stats["std"][3] <= 0.0011 and stats["full"][3] <= 0.0011  # timestamps agree to the format's ms


@pytest.mark.evaldata
def test_vpdq_meta_hash_files_roundtrip_and_dense_matching(eval_data):
    folder = _videos(eval_data) / "threatexchange" / "vpdq-sample-hashes"
    files = {p.stem: p for p in sorted(folder.glob("*.txt")) if not p.stem.endswith("128x128")}
    hashes = {}
    for name, path in files.items():
        text = path.read_text()
        hashes[name] = loads(text)
        assert dumps(hashes[name]) == text, f"{name}: format round trip changed bytes"
    # Every-frame hashes (how Meta made these files): all chair clips with the same framing
    # (letterbox bars) match each other except the one whose large logo covers the frame.
    ours = _matches(hashes)
    bar_chairs = [n for n in hashes if n.startswith("chair") and not n.endswith("no-bar") and "large-logo" not in n]
    assert len(bar_chairs) == 6
    assert all(frozenset((a, b)) in ours for i, a in enumerate(bar_chairs) for b in bar_chairs[i + 1:])
    assert not [p for p in ours if len({_family(n) for n in p}) > 1]
    assert frozenset(("chair-orig-22-fhd-no-bar", "chair-orig-22-hd-no-bar")) in ours
    assert frozenset(("pattern-hd-no-bar", "pattern-longer-no-bar")) in ours
    assert match_vpdq([], hashes["chair-19-sd-bar"]).is_match() is False


# --------------------------------------------------------------------------------------------
# PySceneDetect goldens: cuts within one frame (in its frame numbering: nominal rate x time).


@pytest.mark.evaldata
@pytest.mark.parametrize("video", ["counter.mp4", "fades.mp4", "goldeneye-vfr-drop3.mp4", "testvideo.mp4"])
def test_cuts_match_pyscenedetect_goldens(eval_data, video):
    root = _videos(eval_data) / "scenedetect"
    with open_video_path(str(root / video), "mp4") as stream:
        rate = stream.nominal_fps
        selectors = {name: KeyframeSelector(rate, stream.duration_s, detector=name) for name in ("content", "adaptive")}
        scan(stream, *selectors.values())
    for name, golden in (("content", "ContentDetector"), ("adaptive", "AdaptiveDetector")):
        expected = json.loads((root / "goldens" / f"{video}.{golden}.default.json").read_text())["cuts"]
        result = selectors[name].finish()
        ours = [c * float(rate) for c in result.cuts_s]
        print(f"\n{video} {golden}: ours {[round(x, 2) for x in ours]} golden {expected}")
        assert len(ours) == len(expected)
        assert all(abs(a - b) <= 1.0 for a, b in zip(ours, expected))
        assert result.shots == len(expected) + 1
        shots = {k.shot_id for k in result.keyframes}
        assert shots == set(range(result.shots)), "every shot has a keyframe"


@pytest.mark.evaldata
def test_keyframe_rules_and_determinism(eval_data):
    path = str(_videos(eval_data) / "scenedetect" / "goldeneye-vfr-drop3.mp4")
    runs = []
    for _ in range(2):
        with open_video_path(path, "mp4") as stream:
            runs.append(extract_keyframes(stream, every_s=1.0))
    a, b = runs
    assert [(k.time_s, k.frame_index, k.shot_id) for k in a.keyframes] == \
           [(k.time_s, k.frame_index, k.shot_id) for k in b.keyframes]
    assert all(np.array_equal(x.rgb, y.rgb) for x, y in zip(a.keyframes, b.keyframes))
    times = [k.time_s for k in a.keyframes]
    assert times == sorted(times)
    for prev, cur in zip(a.keyframes, a.keyframes[1:]):
        if cur.shot_id == prev.shot_id:
            assert cur.time_s - prev.time_s >= 1.0 - 1e-6  # at most one per every_s inside a shot
            assert cur.time_s - prev.time_s <= 1.0 + 0.2   # and no long gaps (VFR frame gaps < 0.2 s)
    with open_video_path(path, "mp4") as stream:
        capped = extract_keyframes(stream, every_s=0.1, max_keyframes=4)
    assert len(capped.keyframes) <= 4 and capped.capped


@pytest.mark.evaldata
def test_properties_rotation_start_offset_and_opencv_parity(eval_data):
    root = _videos(eval_data) / "scenedetect"
    with open_video_path(str(root / "issue-134-rotate.mp4"), "mp4") as stream:
        assert (stream.width, stream.height, stream.rotation) == (1280, 544, 90)
        kf = extract_keyframes(stream, every_s=100.0, max_side=None)
    assert kf.keyframes[0].rgb.shape == (1280, 544, 3), "keyframes are upright"
    with open_video_path(str(root / "delayed_start.mp4"), "mp4") as stream:
        times = [f.time_s for f in stream.frames()]
        assert times[0] == 0.0 and abs(stream.start_time_s - 1.075) < 1e-6
    with open_video_path(str(root / "counter.mp4"), "mp4") as stream:
        info = stream.info()
        frames = [(f.index, f.time_s) for f in stream.frames()]
    assert info["frame_count"] == 30 and info["fps"] == 10.0 and info["duration_s"] == 3.0
    assert [t for _, t in frames] == [float(Fraction(i, 10)) for i in range(30)]
    # OpenCV fallback from an archive member (no path): a bounded temp copy, removed on close.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(root / "counter.mp4", "inner/counter.mp4")
    with zipfile.ZipFile(buf) as zf, zf.open("inner/counter.mp4") as member:
        with open_video(member, "mp4", None) as stream:  # PyAV reads the member directly
            assert stream.BACKEND_NAME == "pyav" and [(f.index, f.time_s) for f in stream.frames()] == frames
        stream = open_video(member, "mp4", None, backends=("opencv",))
        tmp = stream._tmp_path
        cv_frames = [(f.index, f.time_s) for f in stream.frames()]
        stream.close()
    assert tmp and not Path(tmp).exists()
    assert [i for i, _ in cv_frames] == [i for i, _ in frames]
    assert all(abs(a - b) < 0.002 for (_, a), (_, b) in zip(cv_frames, frames))


# --------------------------------------------------------------------------------------------
# Variable frame rate: times are the container's, exactly.


def _encode(path: Path, pts_ms: list[int], fmt: str = "mp4", codec: str = "mpeg4") -> None:
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 37) % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.mark.parametrize("fmt,demuxer", [("mp4", "mp4"), ("matroska", "matroska")])
def test_vfr_times_are_exact(tmp_path, fmt, demuxer):
    pts_ms = [0, 40, 100, 110, 300, 1000, 1033, 1500, 1501, 2000, 4999]
    path = tmp_path / "vfr.bin"
    _encode(path, pts_ms, fmt)
    with open_video_path(str(path), demuxer) as stream:
        frames = list(stream.frames())
        stepped = [f.index for f in stream.frames(step_s=1.0)]
    assert [f.time_s for f in frames] == [t / 1000 for t in pts_ms]
    assert all(f.exact_time for f in frames) and [f.index for f in frames] == list(range(len(pts_ms)))
    assert stepped == [0, 5, 9, 10]  # first frame at or after 0 s, 1 s, 2 s, then 4.999 s (none in 3-4 s)
    with open_video_path(str(path), demuxer) as stream:
        hasher = VpdqHasher(stream.fps, seconds_per_hash=0)
        scan(stream, hasher)
    assert [f.timestamp_s for f in hasher.features] == [t / 1000 for t in pts_ms]


# --------------------------------------------------------------------------------------------
# Broken and hostile files: a typed error or a partial flag, never a hang, never the network.


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=8000)
        samples = np.zeros((1, 1024), dtype=np.float32)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _open_all_backends(path: Path, demuxer: str = "mp4") -> None:
    with open(path, "rb") as fh:
        stream = open_video(fh, demuxer, str(path))
        try:
            list(stream.frames())
        finally:
            stream.close()


@pytest.mark.timeout(30)
def test_empty_and_audio_only(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoOpenError) as err:
        _open_all_backends(empty)
    assert err.value.reason == "empty"
    audio = tmp_path / "audio.mp4"
    _audio_only(audio)
    with pytest.raises(VideoOpenError) as err:
        _open_all_backends(audio)
    assert err.value.reason == "no_video_stream"


@pytest.mark.timeout(30)
def test_playlist_renamed_mp4_is_not_followed(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(3)
    port = server.getsockname()[1]
    connections = []

    def accept():
        try:
            conn, _ = server.accept()
            connections.append(conn)
        except OSError:
            pass

    listener = threading.Thread(target=accept, daemon=True)
    listener.start()
    secret = tmp_path / "secret.ts"
    secret.write_bytes(b"\x47" * 188 * 4)
    playlist = tmp_path / "playlist.mp4"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                        f"http://127.0.0.1:{port}/seg.ts\n#EXTINF:10,\nfile://{secret}\n#EXT-X-ENDLIST\n")
    for demuxer in ("mp4", "mpegts", "hls"):
        with pytest.raises(VideoOpenError) as err:
            _open_all_backends(playlist, demuxer)
        assert err.value.reason in {"container_error", "format_not_allowed", "no_decodable_frame", "format_mismatch"}
    listener.join(timeout=1.0)
    server.close()
    assert connections == [], "opening a playlist reached the network"


@pytest.mark.evaldata
@pytest.mark.timeout(60)
def test_truncated_corrupt_and_index_less(eval_data, tmp_path):
    te = _videos(eval_data) / "threatexchange" / "sample-videos" / "chair-19-sd-bar.mp4"
    data = te.read_bytes()  # 'moov' first (faststart): half the file still has the full index
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    with open_video_path(str(half), "mp4") as stream:
        n = sum(1 for _ in stream.frames())
        assert stream.partial and 0 < n < stream.frame_count
    # 'moov' last: half the file has no index at all
    counter = (_videos(eval_data) / "scenedetect" / "counter.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(counter[: len(counter) // 2])
    with pytest.raises(VideoOpenError):
        _open_all_backends(cut)
    # index removed: ftyp + free + mdat, the moov box cut out (FFmpeg recovers a moov merely
    # renamed to 'free', so the bytes must go)
    moov = data.index(b"moov") - 4
    moov_size = int.from_bytes(data[moov:moov + 4], "big")
    no_index = tmp_path / "noindex.mp4"
    no_index.write_bytes(data[:moov] + data[moov + moov_size:])
    with pytest.raises(VideoOpenError):
        _open_all_backends(no_index)
    # garbage in the middle of the media data: frames still come, errors are counted not raised
    rng = np.random.default_rng(0)
    mid = len(data) // 2
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(data[:mid] + rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes() + data[mid + 200_000:])
    with open_video_path(str(corrupt), "mp4") as stream:
        try:
            n = sum(1 for _ in stream.frames())
        except VideoDecodeError:
            n = 0
    assert n > 0


def test_unknown_demuxer_refused(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(b"\x00" * 100)
    for demuxer in ("hls", "concat", "image2", "lavfi"):
        with pytest.raises(VideoOpenError) as err:
            _open_all_backends(path, demuxer)
        assert err.value.reason == "format_not_allowed"


# --------------------------------------------------------------------------------------------
# TMK level-1: our average PDQF features against Meta's .tmk files, and the family threshold.


@pytest.mark.evaldata
def test_tmk_level1_agrees_with_meta_and_separates_families(eval_data):
    from vidpipe.video.tmk import TMK_LEVEL1_THRESHOLD, TmkAverager, level1, read_tmk_file

    root = _videos(eval_data) / "threatexchange"
    meta = {p.stem: read_tmk_file(p) for p in sorted((root / "tmk-sample-hashes").glob("*.tmk"))}
    assert meta and all(m.frames_per_sec == 15 for m in meta.values())
    ours, agreement = {}, {}
    for path in sorted((root / "sample-videos").glob("*.mp4")):
        if path.stem not in meta:
            continue
        with open_video_path(str(path), "mp4") as stream:
            fold = TmkAverager()
            scan(stream, fold)
        ours[path.stem] = fold.feature()
        agreement[path.stem] = level1(ours[path.stem], meta[path.stem].average)
        assert abs(fold.frames - meta[path.stem].frame_feature_count) <= 3, path.stem
    print(f"\nTMK level-1 feature vs Meta's .tmk: min cosine {min(agreement.values()):.4f}")
    assert len(ours) >= 12 and min(agreement.values()) >= 0.98
    for features in (ours, {n: m.average for n, m in meta.items()}):
        names = sorted(features)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                same = _family(a) == _family(b)
                score = level1(features[a], features[b])
                assert (score >= TMK_LEVEL1_THRESHOLD) == same, (a, b, round(score, 3))
