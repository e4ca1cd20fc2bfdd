"""Bad input through the command-line contract.

A hostile corpus (tests/hostile_corpus.py) and the evaluation set's corrupt files are ingested
with ``python -m vidpipe``. Every file must end with an acceptable status and reason, the run must
complete and balance its counts, the evidence must be left byte- and mtime-identical, nothing may
be written outside the case, and nothing may touch the network. The generator's artefacts are
checked first, so a failure below is the pipeline's, not the corpus's.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import hostile_corpus as hc
import numpy as np
import pytest
from PIL import Image, ImageFile

REPO = Path(__file__).resolve().parent.parent
INGEST_TIMEOUT_S = 240  # whole hostile ingest; pytest-timeout below is the hard cap per test
EXPORT_TIMEOUT_S = 60
STATUSES = set(hc.STATUSES)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
class Canary:
    """A localhost TCP listener that records every connection (the bait files point at it)."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.hits: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.hits.append(conn.recv(512) or b"<connected>")
                except OSError:
                    self.hits.append(b"<connected>")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` by lstat: regular files with SHA-256 + mtime_ns, links, specials.

    Never follows a link and never opens anything but regular files (opening the FIFO would block).
    """
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    digest = hashlib.file_digest(fh, "sha256").hexdigest()
                out[rel] = ("file", st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode), digest)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", st.st_mtime_ns, stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode), st.st_mtime_ns)
    return out


def run_vidpipe(args: list[str], *, cwd: Path, env: dict[str, str],
                timeout: float) -> subprocess.CompletedProcess:
    """Run ``python -m vidpipe`` in its own process group; on timeout kill that group and fail."""
    proc = subprocess.Popen([sys.executable, "-m", "vidpipe", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"vidpipe {' '.join(args[:1])} did not finish in {timeout} s (a hang: FIFO opened? bomb "
                    f"expanded? EXIF loop?)\nstderr tail:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def line_paths(line: dict) -> list[str]:
    """The line's paths as surrogateescape strings.

    The export shows a name that is not UTF-8 with ``\\xNN`` escapes in ``paths`` and gives its
    exact bytes in ``paths_b64``; map each escaped form back to the original name.
    """
    exact = {}
    for b64 in line.get("paths_b64") or []:
        raw = base64.b64decode(b64)
        exact[raw.decode("utf-8", "backslashreplace")] = os.fsdecode(raw)
    return [exact.get(p, p) for p in line.get("paths") or []]


def recoverable_bytes(line: dict) -> set[bytes]:
    """Every path's original bytes that can be recovered from an export line."""
    out = {os.fsencode(p) for p in line_paths(line) if _fsencodable(p)}
    for b64 in line.get("paths_b64") or []:
        out.add(base64.b64decode(b64))
    return out


def _fsencodable(path: str) -> bool:
    try:
        os.fsencode(path)
        return True
    except UnicodeError:
        return False


@dataclass
class IngestRun:
    root: Path
    case: Path
    base: Path
    summary: dict
    returncode: int
    stdout: str
    stderr: str
    lines: list[dict]
    by_path: dict[str, dict]
    duplicate_paths: list[str]


def ingest_and_export(base: Path, root: Path, env: dict[str, str], cwd: Path) -> IngestRun:
    case = base / "case"
    ingest = run_vidpipe(["ingest", str(root), "--case", str(case), "--no-faces", "--no-scenes", "--json"],
                         cwd=cwd, env=env, timeout=INGEST_TIMEOUT_S)
    try:
        summary = json.loads(ingest.stdout)
    except json.JSONDecodeError:
        summary = {}
    lines: list[dict] = []
    if ingest.returncode == 0:
        out = base / "export.jsonl"
        export = run_vidpipe(["export", "--case", str(case), "--format", "jsonl", "--out", str(out)],
                             cwd=cwd, env=env, timeout=EXPORT_TIMEOUT_S)
        assert export.returncode == 0, f"export exited {export.returncode}:\n{export.stderr[-3000:]}"
        lines = [json.loads(t) for t in out.read_text(encoding="utf-8").splitlines() if t.strip()]
    by_path: dict[str, dict] = {}
    duplicates = []
    for line in lines:
        for path in line_paths(line):
            if path in by_path:
                duplicates.append(path)
            by_path[path] = line
    return IngestRun(root, case, base, summary, ingest.returncode, ingest.stdout, ingest.stderr, lines,
                     by_path, duplicates)


def cli_env(canary_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proxy = f"http://127.0.0.1:{canary_port}"  # any proxied request lands on the canary too
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = proxy
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    return env


def assert_ran(run: IngestRun) -> None:
    """The other checks mean nothing if the ingest died early (it would have touched nothing)."""
    assert run.returncode == 0 and run.summary.get("status") == "completed", (
        f"ingest exited {run.returncode}; stderr tail:\n{run.stderr[-2000:]}")


def assert_contract_summary(run: IngestRun) -> None:
    assert run.returncode == 0, f"ingest exited {run.returncode}\nstdout: {run.stdout[:1000]}\n" \
                                f"stderr tail:\n{run.stderr[-3000:]}"
    assert run.summary, f"ingest --json did not print one JSON object: {run.stdout[:1000]!r}"
    s = run.summary
    assert s["status"] == "completed", s
    total = s["ok"] + s["partial"] + sum(s["failed"].values()) + sum(s["skipped"].values())
    assert s["discovered"] == total, f"discovered {s['discovered']} != ok+partial+failed+skipped {total}: {s}"


# ---------------------------------------------------------------------------------------------
# The generator: every artefact is what it claims to be
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, hc.Expectation]]:
    root = tmp_path_factory.mktemp("corpus") / "evidence"
    return root, hc.build_hostile_corpus(root)


def _pillow_load(path: Path, truncated_ok: bool) -> np.ndarray | Exception:
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = truncated_ok
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                im.load()
                return np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - the exception is the observation
        return exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


@pytest.mark.timeout(60)
def test_generator_is_fast_deterministic_and_small(tmp_path):
    import time

    t0 = time.perf_counter()
    cases_a = hc.build_hostile_corpus(tmp_path / "a")
    elapsed = time.perf_counter() - t0
    hc.build_hostile_corpus(tmp_path / "b")
    assert elapsed < 10, f"corpus generation took {elapsed:.1f} s"
    snap_a = {k: v[-1] for k, v in snapshot(tmp_path / "a").items() if v[0] == "file"}
    snap_b = {k: v[-1] for k, v in snapshot(tmp_path / "b").items() if v[0] == "file"}
    assert snap_a == snap_b, "the corpus must be byte-identical on every run"
    on_disk = sum(os.lstat(tmp_path / "a" / k).st_size for k in snap_a)
    assert on_disk < 5 * 1024**2, f"corpus is {on_disk} bytes on disk"
    # Every regular file's content is unique, so each case gets its own export line.
    digests = Counter(snap_a.values())
    assert max(digests.values()) == 1, [k for k, d in snap_a.items() if digests[d] > 1]
    # Every top-level path the generator wrote has an expectation, and vice versa.
    written = {k for k, v in snapshot(tmp_path / "a").items() if v[0] != "dir"}
    keys = {k for k, e in cases_a.items() if "!" not in k and not e.pattern}
    assert written == keys, (written ^ keys)


def test_truncation_sweep_behaves_as_documented(corpus):
    root, cases = corpus
    ref_jpeg = _pillow_load(root / "trunc/jpeg_intact.jpg", False)
    ref_png = _pillow_load(root / "trunc/png_intact.png", False)
    assert isinstance(ref_jpeg, np.ndarray) and isinstance(ref_png, np.ndarray)
    cuts = sorted(k for k in cases if k.startswith("trunc/") and "_cut_" in k)
    assert Counter(Path(c).suffix for c in cuts) == {".jpg": 10, ".png": 10}
    intact_sizes = {".jpg": (root / "trunc/jpeg_intact.jpg").stat().st_size,
                    ".png": (root / "trunc/png_intact.png").stat().st_size}
    for rel in cuts:
        path = root / rel
        ref = ref_jpeg if rel.endswith(".jpg") else ref_png
        assert path.stat().st_size < intact_sizes[path.suffix], rel
        exp = cases[rel]
        strict, lenient = _pillow_load(path, False), _pillow_load(path, True)
        # Pillow 13 (strict) raises on every JPEG cut, and on every PNG cut except the four whose
        # pixel data is complete (06-09): those load without a word.
        silent = rel.endswith(("06_no_adler.png", "07_no_idat_crc.png", "08_no_iend.png",
                               "09_one_byte_short.png"))
        assert isinstance(strict, np.ndarray) == silent, (rel, strict)
        if "ok" in exp.statuses:
            # EOI/IEND-only cuts: every pixel survives, identical to the intact file.
            assert isinstance(lenient, np.ndarray) and (lenient == ref).all(), rel
        else:
            assert "ok" not in exp.statuses
            if isinstance(lenient, np.ndarray):
                complete = (lenient == ref).all()
                # Only the PNG checksum cuts decode completely; they are the silent truncations.
                assert not complete or rel.endswith(("no_adler.png", "no_idat_crc.png")), rel
    # The silent PNG truncations: Pillow raises nothing, yet Adler-32/IDAT CRC/IEND are missing.
    for rel in ("trunc/png_cut_06_no_adler.png", "trunc/png_cut_07_no_idat_crc.png"):
        assert isinstance(_pillow_load(root / rel, False), np.ndarray), rel
        assert not (root / rel).read_bytes().endswith(b"IEND\xaeB`\x82")
    # JPEG without EOI: strict Pillow raises, so the pipeline sees it; the pixels are all there.
    assert isinstance(_pillow_load(root / "trunc/jpeg_cut_08_no_eoi.jpg", False), OSError)


def test_pixel_bombs_are_real(corpus):
    root, _ = corpus
    with pytest.raises(Image.DecompressionBombError):
        Image.open(root / "bombs/header_only_100000x100000.png")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 200_000_000  # the lead's default pixel budget
    try:
        with Image.open(root / "bombs/real_10000x10000.png") as im:
            assert im.size == (10_000, 10_000) and im.mode == "RGB"
            im.load()  # decodes ~300 MB of pixels: the IDAT is genuine
            assert im.getpixel((5000, 3000)) == (255, 255, 255)
            assert im.getpixel((100, 6000)) == (128, 128, 128)
            assert im.getpixel((9999, 9999)) == (0, 0, 0)
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    assert (root / "bombs/real_10000x10000.png").stat().st_size < 1024**2


def test_exif_traps_are_real_and_readable_by_a_guarded_reader(corpus):
    import exifread

    root, _ = corpus
    blobs = {"ifd0_self_cycle": hc.exif_ifd0_self_cycle(), "two_cycle": hc.exif_two_cycle_and_subifd_cycle(),
             "huge": hc.exif_huge_count()}
    # The structures are what they claim: IFD0's next pointer, the ExifIFD pointer, the counts.
    self_cycle = blobs["ifd0_self_cycle"]
    n = int.from_bytes(self_cycle[8:10], "little")
    assert int.from_bytes(self_cycle[10 + 12 * n:14 + 12 * n], "little") == 8
    two = blobs["two_cycle"]
    n0 = int.from_bytes(two[8:10], "little")
    ifd1 = int.from_bytes(two[10 + 12 * n0:14 + 12 * n0], "little")
    n1 = int.from_bytes(two[ifd1:ifd1 + 2], "little")
    assert int.from_bytes(two[ifd1 + 2 + 12 * n1:ifd1 + 6 + 12 * n1], "little") == 8
    entries0 = {int.from_bytes(two[10 + 12 * i:12 + 12 * i], "little"): two[10 + 12 * i:22 + 12 * i]
                for i in range(n0)}
    assert int.from_bytes(entries0[0x8769][8:12], "little") == 8
    huge = blobs["huge"]
    counts = [int.from_bytes(huge[10 + 12 * i + 4:10 + 12 * i + 8], "little")
              for i in range(int.from_bytes(huge[8:10], "little"))]
    assert counts.count(0x7FFFFFFF) == 2
    # A loop-guarded reader (exifread 3.5) still gets the camera out of each.
    for rel, make in (("exif/ifd0_self_cycle.jpg", "CycleCam"), ("exif/huge_count.jpg", "HugeCam"),
                      ("exif/ifd_two_cycle_subifd_cycle.jpg", "CycleCam"), ("exif/gps_zero.jpg", "ZeroCam")):
        with open(root / rel, "rb") as fh:
            tags = exifread.process_file(fh, details=False)
        assert str(tags["Image Make"]) == make, rel
    with open(root / "exif/gps_zero.jpg", "rb") as fh:
        tags = exifread.process_file(fh, details=False)
    assert str(tags["GPS GPSLatitudeRef"]) == "N" and str(tags["GPS GPSLatitude"]) == "[0, 0, 0]"
    assert str(tags["GPS GPSLongitude"]) == "[0, 0, 0]"
    for rel in ("exif/ifd0_self_cycle.jpg", "exif/huge_count.jpg", "exif/gps_control.jpg"):
        assert isinstance(_pillow_load(root / rel, False), np.ndarray), rel  # the pixels are intact


def test_archives_are_what_they_claim(corpus):
    root, _ = corpus
    with zipfile.ZipFile(root / "archives/zipbomb.zip") as zf:
        (info,) = zf.infolist()
        assert info.file_size == hc.BOMB_SIZE and info.compress_size < 2 * 1024**2
        with zf.open(info) as member:  # really expands: read it all, zipfile checks the CRC at EOF
            assert member.read(3) == b"\xff\xd8\xff"
            total = 3
            while chunk := member.read(1 << 24):
                total += len(chunk)
        assert total == hc.BOMB_SIZE
    # 42.zip-style nesting: a zip of zips of distinct bomb zips.
    with zipfile.ZipFile(root / "archives/nested42.zip") as zf:
        names = zf.namelist()
        assert len(names) == hc.NESTED_FANOUT and all(n.endswith(".zip") for n in names)
        level1 = zipfile.ZipFile(io.BytesIO(zf.read(names[0])))
        bombs = [level1.read(n) for n in level1.namelist()]
        assert len(bombs) == hc.NESTED_FANOUT and len(set(bombs)) == len(bombs)  # distinct contents
        inner = zipfile.ZipFile(io.BytesIO(bombs[0])).infolist()[0]
        assert inner.filename == "payload.jpg" and inner.file_size == hc.BOMB_SIZE
        with zipfile.ZipFile(io.BytesIO(bombs[1])).open("payload.jpg") as member:
            tail, total = b"", 0
            while chunk := member.read(1 << 24):  # CRC checked at EOF
                total, tail = total + len(chunk), (tail + chunk)[-64:]
        assert total == hc.BOMB_SIZE and tail.endswith(b"copy 0.1")
    with zipfile.ZipFile(root / "archives/zipslip.zip") as zf:
        assert "../../evil.jpg" in zf.namelist()
        link = zf.getinfo("photos/link.jpg")
        assert stat.S_ISLNK(link.external_attr >> 16) and zf.read(link) == b"/etc/passwd"
        assert zf.testzip() is None
    with zipfile.ZipFile(root / "archives/absolute.zip") as zf:
        assert hc.ZIP_ABSOLUTE_MEMBER in zf.namelist()
    with zipfile.ZipFile(root / "archives/encrypted.zip") as zf:
        secret = zf.getinfo("secret.jpg")
        assert secret.flag_bits & 0x1
        with pytest.raises(RuntimeError, match="encrypted"):
            zf.read(secret)
        assert zf.read(secret, pwd=hc.ZIP_PASSWORD)[:3] == b"\xff\xd8\xff"  # real ZipCrypto, CRC checked
    with tarfile.open(root / "archives/slip.tar") as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert {"../evil.jpg", hc.TAR_ABSOLUTE_MEMBER, "photos/safe.jpg"} <= set(members)
    assert members["photos/link.jpg"].issym() and members["photos/null.jpg"].ischr()


def test_links_fifo_and_odd_names_are_real(corpus):
    root, _ = corpus
    links = root / "links"
    for name in ("loop_a", "loop_b", "file_link.jpg", "dir_link", "dangling.jpg"):
        assert (links / name).is_symlink(), name
    with pytest.raises(OSError):  # ELOOP
        os.stat(links / "loop_a")
    assert (links / "dir_link").is_dir() and (links / "file_link.jpg").is_file()
    assert not (links / "dangling.jpg").exists()
    assert stat.S_ISFIFO(os.lstat(root / "special/fifo.jpg").st_mode)
    assert hc.INVALID_UTF8_NAME in os.listdir(os.fsencode(root / "names"))
    from vidpipe.filetype import sniff

    assert sniff((root / "images/random.jpg").read_bytes()[:4096]).mime == "application/octet-stream"
    assert sniff((root / "images/notes.jpg").read_bytes()[:4096]).mime == "text/plain"
    assert sniff((root / "net/playlist.mp4").read_bytes()[:4096]).label == "M3U"


# ---------------------------------------------------------------------------------------------
# The hostile ingest through the CLI
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    root = base / "evidence"
    cwd = base / "cwd" / "a" / "b"  # ../../evil.jpg from here still lands inside `base`
    cwd.mkdir(parents=True)
    canary = Canary()
    try:
        cases = hc.build_hostile_corpus(root, canary_port=canary.port)
        before = snapshot(root)
        absolute_targets = {p: os.path.lexists(p) for p in (hc.ZIP_ABSOLUTE_MEMBER, hc.TAR_ABSOLUTE_MEMBER)}
        run = ingest_and_export(base, root, cli_env(canary.port), cwd)
        after = snapshot(root)
    finally:
        canary.close()
    return {"run": run, "cases": cases, "before": before, "after": after, "canary": canary,
            "absolute_targets": absolute_targets, "cwd": cwd}


@pytest.mark.timeout(300)
def test_hostile_ingest_completes_and_balances(hostile):
    run = hostile["run"]
    assert_contract_summary(run)
    required = [k for k, e in hostile["cases"].items() if e.required]
    assert run.summary["discovered"] >= len(required)
    assert not run.duplicate_paths, f"paths listed on more than one export line: {run.duplicate_paths}"
    exported_paths = sum(len(line_paths(line)) for line in run.lines)
    assert exported_paths == run.summary["discovered"], (
        f"export lists {exported_paths} paths but ingest discovered {run.summary['discovered']}")


@pytest.mark.timeout(300)
def test_every_hostile_case_ends_in_an_acceptable_state(hostile):
    run, cases = hostile["run"], hostile["cases"]
    assert_ran(run)
    problems: list[str] = []
    root = str(run.root)
    for key, exp in cases.items():
        if exp.pattern or not exp.required:
            continue
        outer, bang, inner = key.partition("!")
        if f"{root}/{outer}{bang}{inner}" not in run.by_path:
            problems.append(f"MISSING {key}: no export line (expected {exp.describe()}; {exp.why})")
    for path, line in sorted(run.by_path.items()):
        key = hc.relative_key(run.root, path)
        if key is None:
            problems.append(f"OUTSIDE {path!r}: exported path is not under the evidence root")
            continue
        exp = hc.find_expectation(cases, key)
        if exp is None:
            problems.append(f"UNEXPECTED {key!r}: {line.get('status')}({line.get('reason')}) "
                            "(a followed link or an invented member?)")
            continue
        problems.extend(_check_line(key, line, exp))
    assert not problems, "\n".join(problems)


def _check_line(key: str, line: dict, exp: hc.Expectation) -> list[str]:
    status, reason = line.get("status"), line.get("reason")
    out = []
    if status not in STATUSES:
        out.append(f"BAD STATUS {key}: {status!r}")
    elif not exp.accepts(status, reason):
        out.append(f"WRONG {key}: got {status}({reason}), expected {exp.describe()} -- {exp.why}")
    if status in ("failed", "skipped", "partial") and not reason:
        out.append(f"NO REASON {key}: {status} without a reason")
    if exp.hashed:
        hashes = line.get("hashes") or {}
        if not (line.get("sha256") and len(line["sha256"]) == 64):
            out.append(f"NOT HASHED {key}: sha256 {line.get('sha256')!r}")
        if not (hashes.get("phash") and hashes.get("pdq")):
            out.append(f"NO PERCEPTUAL HASHES {key}: {hashes}")
    if exp.mime is not None and line.get("mime") != exp.mime:
        out.append(f"MIME {key}: got {line.get('mime')!r}, expected {exp.mime!r} (sniffed, not by extension)")
    for name, value in exp.fields.items():
        if name in line and line[name] != value:
            out.append(f"FIELD {key}: {name} is {line[name]!r}, expected {value!r}")
    if exp.gps is not None:
        gps = (line.get("exif") or {}).get("gps") or {}
        lat, lon = gps.get("lat"), gps.get("lon")
        if lat is None or lon is None or abs(lat - exp.gps[0]) > 1e-4 or abs(lon - exp.gps[1]) > 1e-4:
            out.append(f"GPS {key}: got {gps}, expected lat/lon {exp.gps}")
    return out


@pytest.mark.timeout(300)
def test_evidence_is_untouched(hostile):
    assert_ran(hostile["run"])
    before, after = hostile["before"], hostile["after"]
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, [(k, before.get(k), after.get(k)) for k in changed]
    assert sum(1 for v in before.values() if v[0] == "file") > 40


@pytest.mark.timeout(300)
def test_nothing_is_written_outside_the_case(hostile):
    assert_ran(hostile["run"])
    run = hostile["run"]
    base = run.base
    assert sorted(p.name for p in base.iterdir()) == ["case", "cwd", "evidence", "export.jsonl"]
    assert not [p for p in hostile["cwd"].parent.parent.rglob("*") if not p.is_dir()], "files written in cwd"
    found = [p for p in base.rglob("*") if p.name in (hc.SLIP_MEMBER_NAME, Path(hc.TAR_ABSOLUTE_MEMBER).name)
             and "evidence" not in p.relative_to(base).parts[:1]]
    assert not found, f"unsafe members were extracted: {found}"
    for parent in (base.parent, base.parent.parent):
        assert not (parent / hc.SLIP_MEMBER_NAME).exists(), parent
    for target, existed in hostile["absolute_targets"].items():
        assert os.path.lexists(target) == existed, f"{target} was written by the ingest"


@pytest.mark.timeout(300)
def test_no_network_access(hostile):
    assert_ran(hostile["run"])
    assert hostile["canary"].hits == [], f"something connected to the canary: {hostile['canary'].hits[:3]}"


@pytest.mark.timeout(300)
def test_links_are_never_followed(hostile):
    assert_ran(hostile["run"])
    run = hostile["run"]
    links = f"{run.root}/links/"
    for link in ("dir_link", "loop_a", "loop_b"):
        below = [p for p in run.by_path if p.startswith(f"{links}{link}/")]
        assert not below, f"walker followed {link}: {below}"
    inside = [p for p in run.by_path if p.endswith("/inside.jpg")]
    assert inside == [f"{links}target_dir/inside.jpg"], inside
    for link in ("file_link.jpg", "dir_link", "loop_a", "dangling.jpg"):
        line = run.by_path.get(f"{links}{link}")
        assert line is not None and line["sha256"] is None, f"{link} was read: {line}"


@pytest.mark.timeout(300)
def test_undecodable_name_is_kept_losslessly(hostile):
    if "names/" + os.fsdecode(hc.INVALID_UTF8_NAME) not in hostile["cases"]:
        pytest.skip("this file system refuses non-UTF-8 file names")
    assert_ran(hostile["run"])
    run = hostile["run"]
    raw = os.fsencode(run.root) + b"/names/" + hc.INVALID_UTF8_NAME
    lines = [line for line in run.lines if raw in recoverable_bytes(line)]
    names_lines = [ln.get("paths") for ln in run.lines if "/names/" in "".join(ln.get("paths") or [])]
    assert len(lines) == 1, f"no export line recovers {raw!r}; lines under names/: {names_lines}"
    line = lines[0]
    assert line["status"] == "ok" and line["sha256"], line
    # JSON carries it either as surrogate escapes or as base64 of the bytes; both must round-trip.
    if line.get("paths_b64"):
        assert base64.b64encode(raw).decode() in line["paths_b64"]


# ---------------------------------------------------------------------------------------------
# The evaluation set's corrupt files
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corrupt_run(eval_data, tmp_path_factory):
    root = eval_data / "corrupt"
    base = tmp_path_factory.mktemp("corrupt")
    cwd = base / "cwd"
    cwd.mkdir()
    canary = Canary()
    try:
        before = snapshot(root)
        run = ingest_and_export(base, root, cli_env(canary.port), cwd)
        after = snapshot(root)
    finally:
        canary.close()
    return {"run": run, "before": before, "after": after, "canary": canary, "root": root}


@pytest.mark.evaldata
@pytest.mark.timeout(300)
def test_corrupt_set_every_file_ends_with_status_and_reason(corrupt_run):
    run, root = corrupt_run["run"], corrupt_run["root"]
    assert_contract_summary(run)
    files = sorted(str(p) for p in root.rglob("*") if stat.S_ISREG(os.lstat(p).st_mode))
    missing = [p for p in files if p not in run.by_path]
    assert not missing, f"{len(missing)} files have no export line: {missing[:10]}"
    problems = []
    for path in files:
        line = run.by_path[path]
        if line["status"] not in STATUSES:
            problems.append(f"{path}: status {line['status']!r}")
        elif line["status"] != "ok" and not line.get("reason"):
            problems.append(f"{path}: {line['status']} without a reason")
    assert not problems, "\n".join(problems)
    assert corrupt_run["before"] == corrupt_run["after"], "the corrupt set changed on disk"
    assert corrupt_run["canary"].hits == []


@pytest.mark.evaldata
@pytest.mark.timeout(300)
def test_corrupt_set_files_pillow_cannot_load_are_never_ok(corrupt_run):
    """labels.csv records what Pillow 13 did with each image; a file it raised on is not 'ok'."""
    run, root = corrupt_run["run"], corrupt_run["root"]
    with open(root / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    decoded_by_pillow = ("pillow", "compreface_imgtools", "imagededup")  # the rest were PyAV observations
    pillow_rows = [r for r in rows if r["file"].split("/")[0] in decoded_by_pillow]
    raised = [r for r in pillow_rows if r["observed_pillow13_or_pyav18"].startswith("exc")]
    assert len(raised) >= 70
    wrong = [f"{r['file']} ({r['observed_pillow13_or_pyav18']}): "
             f"{run.by_path[str(root / r['file'])]['status']}" for r in raised
             if run.by_path.get(str(root / r["file"]), {}).get("status") == "ok"]
    assert not wrong, "files Pillow 13 cannot load were reported ok:\n" + "\n".join(wrong)


@pytest.mark.evaldata
@pytest.mark.timeout(300)
def test_corrupt_set_identical_files_share_one_line_typed_by_content(corrupt_run):
    """imagededup's ukbench09380.{bmp,png,svg,jpeg} are byte-identical JPEGs with lying extensions."""
    run, root = corrupt_run["run"], corrupt_run["root"]
    groups: dict[str, list[str]] = {}
    for p in root.rglob("*"):
        if stat.S_ISREG(os.lstat(p).st_mode):
            groups.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), []).append(str(p))
    for digest, paths in groups.items():
        lines = {id(run.by_path[p]) for p in paths}
        assert len(lines) == 1, f"identical files split over {len(lines)} lines: {paths}"
        assert run.by_path[paths[0]]["sha256"] == digest
    ukbench = run.by_path[str(root / "imagededup/formats_images/ukbench09380.svg")]
    assert ukbench["mime"] == "image/jpeg" and ukbench["status"] == "ok", ukbench
    assert len([p for p in ukbench["paths"] if "ukbench09380." in p]) >= 4
