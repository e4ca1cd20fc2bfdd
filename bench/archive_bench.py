"""Archive members/s: one streaming pass (now) against one open per member (before), same run.

Generates zip and tar.gz archives of N tiny members (1k, 10k; 100k with ``--full``) and measures:

- ``pass``: the archive task's worker work (``vidpipe.pipeline.archive_task.process_archive``):
  list, limit, hash and type every member in one pass;
- ``baseline``: the old path, one ``open_item`` per member (file open, ``open_member`` walks to
  the member: a zip re-reads its central directory, a tar.gz re-decompresses from its start), then
  hashed. Timed on every member at 1k; above that on an evenly spread sample of members, and
  the total extrapolated (labelled "extrapolated");
- ``ingest``: a whole ``vidpipe ingest`` of the archive (workers, writer, SQLite), members/s.

Flat members/s from 1k to 100k is the claim; the baseline's falls as N grows (quadratic).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

SAMPLE = 200  # members timed for the baseline above 1k


def make_archives(root: Path, n: int) -> dict[str, Path]:
    members = [(f"d{i % 100:02d}/m{i:06d}.txt", b"tiny member %d\n" % i) for i in range(n)]
    zpath, tpath = root / f"n{n}.zip", root / f"n{n}.tar.gz"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    with tarfile.open(tpath, "w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return {"ZIP": zpath, "GZIP": tpath}


def time_pass(path: Path, label: str) -> tuple[float, int]:
    from vidpipe.pipeline.archive_task import process_archive
    from vidpipe.pipeline.tasks import ContentTask
    from vidpipe.sources.base import ItemRef
    from vidpipe.sources.limits import ArchiveLimits

    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    task = ContentTask(sha, ItemRef(os.fsencode(path)), label, "archive", ArchiveLimits(), {"model_inputs": False})
    t0 = time.perf_counter()
    result = process_archive(task)
    elapsed = time.perf_counter() - t0
    assert result.status == "ok", (result.status, result.reason)
    return elapsed, sum(1 for m in result.members if m.hashed is not None)


def time_baseline(path: Path, n: int) -> tuple[float, bool]:
    """Seconds for the old per-member open + hash of all ``n`` members; (seconds, extrapolated)."""
    from vidpipe.extract.digests import digest_stream
    from vidpipe.sources.base import ItemRef, Member
    from vidpipe.sources.limits import ArchiveLimits
    from vidpipe.sources.opener import open_item

    limits = ArchiveLimits()
    picks = range(n) if n <= 1000 else range(0, n, max(1, n // SAMPLE))
    t0 = time.perf_counter()
    for i in picks:
        ref = ItemRef(os.fsencode(path)).child(Member(f"d{i % 100:02d}/m{i:06d}.txt".encode()))
        with open_item(ref, limits) as stream:
            digest_stream(stream)
    elapsed = time.perf_counter() - t0
    return elapsed * n / len(picks), len(picks) < n


def time_ingest(path: Path, n: int, workers: int) -> float:
    from vidpipe.pipeline.runner import IngestConfig, run_ingest

    with tempfile.TemporaryDirectory() as case:
        t0 = time.perf_counter()
        summary = run_ingest(Path(case) / "case", IngestConfig(sources=[str(path)], faces=False, scenes=False,
                                                               workers=workers), progress=False)
        elapsed = time.perf_counter() - t0
    assert summary["discovered"] == n + 1, summary
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="add the 100k-member case (about 2 minutes)")
    parser.add_argument("--sizes", type=int, nargs="*", help="member counts (default 1000 10000 [100000])")
    parser.add_argument("--no-ingest", action="store_true", help="worker-side numbers only")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1000, 10000, 100000] if args.full else [1000, 10000])
    print(f"{'format':7} {'members':>8} {'pass s':>8} {'pass m/s':>10} {'baseline s':>11} {'baseline m/s':>13} "
          f"{'ingest s':>9} {'ingest m/s':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            root = Path(tmp) / str(n)
            root.mkdir()
            for label, path in make_archives(root, n).items():
                pass_s, hashed = time_pass(path, label)
                assert hashed == n, (hashed, n)
                base_s, extrapolated = time_baseline(path, n)
                ingest_s = float("nan") if args.no_ingest else time_ingest(path, n, args.workers)
                fmt = "zip" if label == "ZIP" else "tar.gz"
                note = " (extrapolated)" if extrapolated else ""
                print(f"{fmt:7} {n:8d} {pass_s:8.2f} {n / pass_s:10.0f} {base_s:11.1f} {n / base_s:13.0f} "
                      f"{ingest_s:9.1f} {n / ingest_s:11.0f}{note}", flush=True)
    print("pass = one streaming pass per archive (now); baseline = one open per member (before); "
          "ingest = whole `vidpipe ingest`, faces/scenes off")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
