"""A run killed with SIGKILL at random moments resumes to exactly the uninterrupted case."""

from __future__ import annotations

import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, conservation_holds, run_cli, run_json
from PIL import Image

N_IMAGES = 230


def build_corpus(root: Path) -> None:
    """>= 200 files: photos-like JPEGs/PNGs, duplicates, a zip, truncated and junk files."""
    rng = np.random.default_rng(1234)
    root.mkdir(parents=True)
    for i in range(N_IMAGES):
        coarse = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((900, 640), Image.Resampling.BICUBIC)
        sub = root / f"dir{i % 7}"
        sub.mkdir(exist_ok=True)
        if i % 5 == 0:
            img.save(sub / f"img{i:03d}.png")
        else:
            img.save(sub / f"img{i:03d}.jpg", quality=90)
    for i in range(0, 20, 4):  # byte-identical duplicates under other names
        src = next((root / f"dir{i % 7}").glob(f"img{i:03d}.*"))
        (root / "dups").mkdir(exist_ok=True)
        (root / "dups" / f"copy_{src.name}").write_bytes(src.read_bytes())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(1, 6):
            zf.write(next((root / f"dir{i % 7}").glob(f"img{i:03d}.*")), f"inner/{i}.jpg")
    (root / "bundle.zip").write_bytes(buf.getvalue())
    good = (root / "dir1" / "img001.jpg").read_bytes()
    (root / "junk").mkdir()
    (root / "junk" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "junk" / "empty.jpg").write_bytes(b"")
    (root / "junk" / "notes.txt").write_text("case notes\n")


def ingest_cmd(evidence: Path, case: Path, workers: int = 2) -> list[str]:
    return [sys.executable, "-m", "vidpipe", "ingest", str(evidence), "--case", str(case), "--no-faces",
            "--no-scenes", "--json", "--workers", str(workers)]


def export(case: Path) -> str:
    return run_cli("export", "--case", str(case), "--format", "jsonl").stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_random_sigkills_resume_to_the_uninterrupted_case(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    build_corpus(evidence)
    reference_case = tmp_path / "reference"
    t0 = time.monotonic()
    reference = run_json(*ingest_cmd(evidence, reference_case)[3:])
    full_s = time.monotonic() - t0
    assert reference["discovered"] >= 200 and reference["status"] == "completed"
    reference_export = export(reference_case)

    case = tmp_path / "killed"
    rnd = random.Random(20261129)
    kills, attempts = 0, 0
    while kills < 5 and attempts < 40:
        attempts += 1
        # One worker and short random lives, so that five kills land before the work runs out;
        # the worker count does not change results (the reference used two).
        proc = subprocess.Popen(ingest_cmd(evidence, case, workers=1), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.5, 0.8 + 0.2 * full_s))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if proc.returncode == 0:
            break  # the work finished before the kill landed
    assert kills >= 5, f"only {kills} kills landed mid-run"

    final = run_json(*ingest_cmd(evidence, case)[3:])
    assert final["status"] == "completed" and conservation_holds(final)
    for key in ("discovered", "ok", "partial", "failed", "skipped", "images", "archives"):
        assert final[key] == reference[key], key
    assert export(case) == reference_export

    conn = sqlite3.connect(case / "case.sqlite")
    statuses = dict(conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    # Every killed run that got as far as recording itself is marked aborted by the next one
    # (a kill during interpreter start-up leaves no run row at all).
    assert statuses.get("running", 0) == 0 and statuses.get("aborted", 0) >= 1
    assert conn.execute("SELECT COUNT(*) - COUNT(DISTINCT locator) FROM items").fetchone()[0] == 0


def _wait_for_first_results(db: Path, proc: subprocess.Popen, timeout_s: float = 120.0) -> int:
    """Poll the case (read-only) until some items have a final status; return how many."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the ingest ended before any result was committed"
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05) as conn:
                done = conn.execute("SELECT COUNT(status) FROM item_status").fetchone()[0]
            if done:
                return int(done)
        except sqlite3.OperationalError:
            pass  # the case or its tables do not exist yet
        time.sleep(0.01)
    raise AssertionError("no results committed in time")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigint_finishes_the_batch_marks_interrupted_and_exits_130(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    build_corpus(evidence)
    case = tmp_path / "case"
    # One worker, and the signal goes as soon as the first results are committed: a fixed sleep
    # raced the whole run on a fast machine (CI finished all 240 files inside 3 s).
    proc = subprocess.Popen(ingest_cmd(evidence, case, workers=1), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    done_at_signal = _wait_for_first_results(case / "case.sqlite", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    conn = sqlite3.connect(case / "case.sqlite")
    assert conn.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
    done, total = conn.execute("SELECT COUNT(status), COUNT(*) FROM item_status").fetchone()
    assert done_at_signal <= done < total, (done_at_signal, done, total)
    resumed = run_json(*ingest_cmd(evidence, case)[3:])
    assert resumed["status"] == "completed" and conservation_holds(resumed)
    assert resumed["discovered"] >= 200
    assert os.path.exists(case / "case.sqlite")
