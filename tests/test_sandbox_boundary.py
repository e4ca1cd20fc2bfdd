"""The sandbox is a boundary: a decode worker cannot reach the network, write files, hoard
descriptors, gain privileges, outlive its parent, or smuggle code into the parent through its
results; workers are recycled; SIGTERM stops an ingest within seconds."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import boundary_targets as bt
import numpy as np
import pytest
import sandbox_targets as st

from vidpipe.pipeline import wire
from vidpipe.pipeline.sandbox import SandboxLimits, SandboxPool, TaskFailure, cpu_allowance_s

FUNCTIONS = {"connect": bt.connect, "write_file": bt.write_file, "open_many": bt.open_many,
             "status": bt.status_line, "pid": bt.pid, "forge": bt.forge_pickle, "cpu_limit": bt.cpu_limit,
             "read": bt.read_evidence, "hang": st.hang, "echo": st.echo}
TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent


def run_one(kind: str, task, limits: SandboxLimits | None = None, timeout_s: float = 30):
    with SandboxPool(FUNCTIONS, 1, limits or SandboxLimits()) as pool:
        pool.submit("k", kind, task, timeout_s)
        deadline = time.monotonic() + 60
        while pool.pending and time.monotonic() < deadline:
            for _, result in pool.results():
                return result, getattr(pool, "protections", {})
    raise AssertionError("no result")


def test_a_worker_has_no_network() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        result, protections = run_one("connect", server.getsockname()[1])
    if protections.get("network") == "host":
        pytest.skip("this host permits no network namespace (recorded as network: host)")
    assert isinstance(result, TaskFailure) and result.reason == "worker_error:OSError", result
    assert protections["network"] in ("netns", "userns+netns")


def test_a_worker_cannot_write_files(tmp_path: Path) -> None:
    target = tmp_path / "dropped.bin"
    result, protections = run_one("write_file", str(target))
    assert isinstance(result, TaskFailure) and result.reason == "worker_error:OSError", result
    assert "File too large" in result.detail
    assert not target.exists() or target.stat().st_size == 0
    assert protections["rlimits"]["fsize"] == 0


def test_a_worker_cannot_open_a_thousand_files() -> None:
    result, protections = run_one("open_many", 1000)
    assert isinstance(result, TaskFailure) and result.reason == "worker_error:OSError", result
    assert "Too many open files" in result.detail
    assert protections["rlimits"]["nofile"] <= 64


def test_no_new_privs_and_capabilities() -> None:
    result, protections = run_one("status", "NoNewPrivs")
    assert result == "1"
    assert protections["no_new_privs"] is True
    caps, _ = run_one("status", "CapEff")
    assert int(caps, 16) & ~((1 << 2) | (1 << 3)) == 0  # at most CAP_DAC_READ_SEARCH and CAP_FOWNER (reading)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another owner")
def test_evidence_of_another_owner_is_still_read_without_touching_its_atime(tmp_path: Path) -> None:
    evidence = tmp_path / "theirs.bin"
    evidence.write_bytes(b"e" * 1000)
    os.chown(evidence, 12345, 12345)
    evidence.chmod(0o400)
    os.utime(evidence, (1_000_000, time.time()))  # atime before mtime: relatime would update it
    result, _ = run_one("read", str(evidence))
    assert result == 1000
    assert evidence.stat().st_atime == 1_000_000


def test_cpu_time_is_limited_per_task() -> None:
    limits = SandboxLimits(cpu_budget_s=600)
    (soft, hard), _ = run_one("cpu_limit", None, limits, timeout_s=7)
    assert hard == 600
    assert soft <= cpu_allowance_s(7) + 5  # the task's allowance on top of the little used so far


def test_workers_are_recycled_after_n_tasks() -> None:
    with SandboxPool(FUNCTIONS, 1, SandboxLimits(max_tasks_per_worker=3)) as pool:
        for i in range(7):
            pool.submit(i, "pid", None)
        pids = {}
        while pool.pending:
            pids.update(dict(pool.results()))
    assert [pids[i] for i in range(7)] == [pids[0]] * 3 + [pids[3]] * 3 + [pids[6]]
    assert len({pids[0], pids[3], pids[6]}) == 3


def test_a_forged_pickle_from_a_worker_is_not_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with SandboxPool(FUNCTIONS, 1) as pool:
        pool.submit("forged", "forge", str(marker))
        pool.submit("after", "echo", 7)
        results = {}
        deadline = time.monotonic() + 60
        while pool.pending and time.monotonic() < deadline:
            results.update(dict(pool.results()))
    time.sleep(0.2)
    assert not marker.exists(), "the parent ran code sent by a worker"
    assert isinstance(results["forged"], TaskFailure) and results["forged"].reason == "worker_protocol_error"
    assert results["after"] == 7  # the worker was replaced; the pool goes on


def test_the_codec_rejects_pickles_and_unknown_types() -> None:
    class Exploit:
        def __reduce__(self):
            return (os.system, ("true",))

    with pytest.raises(wire.WireError):
        wire.decode(pickle.dumps(("ok", Exploit())))
    with pytest.raises(wire.WireError):
        wire.encode(("ok", Exploit()))
    forged = wire.encode(TaskFailure("x")).replace(b"vidpipe.pipeline.sandbox:TaskFailure", b"subprocess:Popen" + b" " * 21)
    with pytest.raises(wire.WireError):
        wire.decode(forged)
    with pytest.raises(wire.WireError):
        wire.decode(wire.encode(np.zeros(3, np.float32))[:-4])  # truncated
    with pytest.raises(wire.WireError):
        wire.decode(wire.encode(np.zeros(3, np.float32)).replace(struct.pack("<Q", 3), struct.pack("<Q", 4)))  # shape lies


def test_the_codec_round_trips_results_and_checks_shapes() -> None:
    from vidpipe.pipeline.face_stage import FaceInput
    from vidpipe.pipeline.tasks import ContentResult, HashResult
    from vidpipe.sources.archive import MemberEntry
    from vidpipe.store.video_rows import KeyframeRow, VpdqRow

    content = ContentResult("ab" * 32, "ok", None, "video", 640, 480, {"make": "=cmd", "gps": {"lat": 1.5}},
                            [("pdq", "00ff", 90)], [MemberEntry(b"a\xff.jpg", 3, 2, ("skipped", "x"))],
                            {"video": {"fps": 29.97}}, [FaceInput("ab" * 32, np.ones((4, 5, 3), np.uint8), 0.5, 1.25)],
                            [KeyframeRow(0.0, 0, 1, "shot_start", "ff", 80, "00")], [VpdqRow(0, 100, "ff", 0.0)])
    value = ("ok", HashResult(1, True, None, "m", "s1", "s2", 10, "image/png", "PNG", "image", False, content))
    back = wire.decode(wire.encode(value))
    assert back[1].content.members == content.members and back[1].content.signals == content.signals
    assert back[1].content.detail == content.detail
    assert back[1].content.keyframes == content.keyframes and back[1].content.vpdq == content.vpdq
    assert np.array_equal(back[1].content.face_inputs[0].pixels, content.face_inputs[0].pixels)
    assert back[1].content.face_inputs[0].pixels.flags.writeable
    assert "\udcff" == wire.decode(wire.encode("\udcff"))  # surrogate-escaped path bytes survive
    bad = FaceInput("x", np.ones((4, 5), np.uint8), 0.5)  # not RGB
    with pytest.raises(wire.WireError):
        wire.decode(wire.encode(bad))


_ORPHAN_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import sandbox_targets as st
    from vidpipe.pipeline.sandbox import SandboxPool
    if __name__ == "__main__":
        pool = SandboxPool({{"hang": st.hang}}, 2)
        for i in range(2):
            pool.submit(i, "hang", 120, 300)
        list(pool.results(max_wait_s=0.5))
        print(" ".join(str(s.process.pid) for s in pool._slots), flush=True)
        time.sleep(300)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    script = tmp_path / "orphans.py"
    script.write_text(_ORPHAN_SCRIPT.format(tests=str(TESTS_DIR)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, cwd=REPO, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 2.0
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids), "workers outlived their SIGKILLed parent"
    finally:
        proc.kill()
        for p in pids if "pids" in locals() else []:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def test_sigterm_stops_an_ingest_within_ten_seconds(tmp_path: Path) -> None:
    """A slow corpus (a 40 GB sparse disk image takes minutes to hash) is being worked on when
    SIGTERM arrives: the run ends at once, keeps what it committed, and says it was interrupted."""
    import sqlite3

    from PIL import Image

    evidence, case = tmp_path / "evidence", tmp_path / "case"
    evidence.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 64), (40 * i, 80, 120)).save(evidence / f"a{i}.png")
    with open(evidence / "disk.img", "wb") as fh:
        fh.truncate(40 * 1024**3)
    proc = subprocess.Popen([sys.executable, "-m", "vidpipe", "ingest", str(evidence), "--case", str(case),
                             "--no-faces", "--no-scenes", "--workers", "2", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # until the big file is being hashed
            db = case / "case.sqlite"
            if db.exists():
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                        done = conn.execute("SELECT COUNT(*) FROM items WHERE state != 'pending'").fetchone()[0]
                except sqlite3.Error:
                    done = 0
                if done >= 3:
                    break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(1.0)
        workers = _descendants(proc.pid)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert took < 10, f"SIGTERM took {took:.1f} s"
    assert json.loads(out.strip().splitlines()[-1])["code"] == 130
    time.sleep(0.5)
    assert not [p for p in workers if _alive(p)], "workers outlived the interrupted run"
    with sqlite3.connect(f"file:{case / 'case.sqlite'}?mode=ro", uri=True) as conn:
        status = conn.execute("SELECT status FROM runs ORDER BY started_utc DESC LIMIT 1").fetchone()[0]
        hashed = conn.execute("SELECT COUNT(*) FROM items WHERE state != 'pending'").fetchone()[0]
        pending = conn.execute("SELECT COUNT(*) FROM items WHERE state = 'pending'").fetchone()[0]
    assert status == "interrupted"
    assert hashed == 3 and pending == 1  # the images kept; the disk image is redone on resume
