"""Ingest throughput against a named baseline, measured in the same run on the same files.

Baseline ("naive-loop"): one process; for each image, hashlib SHA-256 of the file, exifread,
PIL full decode, imagehash pHash and dHash. vidpipe: `vidpipe ingest --no-faces --no-scenes`
(MD5+SHA-1+SHA-256, type sniffing, EXIF, reduced decode, pHash+dHash+PDQ, sandboxed workers,
SQLite writes), timed end to end as a subprocess, start-up included.

    python -m bench.ingest_bench [--data DIR] [--workers N] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def build_corpus(dest: Path, data: Path | None, synthetic_12mp: int) -> list[Path]:
    """Real photos from the evaluation data plus generated 12 MP camera-sized JPEGs."""
    dest.mkdir(parents=True)
    files: list[Path] = []
    if data is not None:
        for sub in ("faces", "scenes", "phash", "exif/exifpy/jpg"):
            for path in sorted((data / sub).rglob("*")):
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and "corrupt" not in path.name:
                    target = dest / "real" / f"{len(files):05d}{path.suffix.lower()}"
                    target.parent.mkdir(exist_ok=True)
                    shutil.copyfile(path, target)
                    files.append(target)
    rng = np.random.default_rng(5)
    (dest / "camera").mkdir()
    for i in range(synthetic_12mp):
        coarse = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((4000, 3000), Image.Resampling.BICUBIC)
        noise = rng.integers(-12, 12, (3000, 4000, 3), dtype=np.int16)
        arr = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
        target = dest / "camera" / f"cam{i:03d}.jpg"
        Image.fromarray(arr).save(target, quality=92)
        files.append(target)
    return files


def naive_loop(files: list[Path]) -> tuple[float, int]:
    """The baseline the issue names. Returns (seconds, images that decoded)."""
    import exifread
    import imagehash

    t0 = time.perf_counter()
    ok = 0
    for path in files:
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        with open(path, "rb") as fh:
            try:
                exifread.process_file(fh, details=False)
            except Exception:  # noqa: BLE001
                pass
        try:
            img = Image.open(path)
            img.load()
            imagehash.phash(img)
            imagehash.dhash(img)
            ok += 1
        except Exception:  # noqa: BLE001
            pass
    return time.perf_counter() - t0, ok


def vidpipe_ingest(root: Path, workers: int) -> tuple[float, dict]:
    case = Path(tempfile.mkdtemp(prefix="bench-case-"))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vidpipe", "ingest", str(root), "--case", str(case), "--no-faces",
                           "--no-scenes", "--json", "--workers", str(workers)], capture_output=True, text=True,
                          cwd=REPO, check=True)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(case, ignore_errors=True)
    return elapsed, json.loads(proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("VIDPIPE_EVAL_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--synthetic", type=int, default=24, help="generated 12 MP JPEGs to add")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data = args.data if (args.data / "README.md").exists() else None
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp) / "evidence"
        files = build_corpus(root, data, args.synthetic)
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        for f in files:  # warm the page cache for both contenders alike
            f.read_bytes()
        base_s, base_ok = naive_loop(files)
        ours_s, summary = vidpipe_ingest(root, args.workers)
    n = len(files)
    result = {
        "files": n, "megabytes": round(total_mb, 1), "cpus": os.cpu_count(), "workers": args.workers,
        "baseline": {"name": "naive-loop (sha256+exifread+PIL decode+imagehash phash/dhash, 1 process)",
                     "seconds": round(base_s, 2), "files_per_s": round(n / base_s, 2),
                     "mb_per_s": round(total_mb / base_s, 2), "decoded": base_ok},
        "vidpipe": {"name": f"vidpipe ingest --no-faces --no-scenes --workers {args.workers}",
                    "seconds": round(ours_s, 2), "files_per_s": round(n / ours_s, 2),
                    "mb_per_s": round(total_mb / ours_s, 2), "ok": summary["ok"], "partial": summary["partial"],
                    "failed": summary["failed"]},
        "speedup": round(base_s / ours_s, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"ingest benchmark: {n} image files, {total_mb:.1f} MB, {os.cpu_count()} CPUs")
        print(f"{'':34s}{'seconds':>9s}{'files/s':>10s}{'MB/s':>9s}")
        for key in ("baseline", "vidpipe"):
            r = result[key]
            print(f"{key + ' ' + ('(naive loop)' if key == 'baseline' else ''):34s}{r['seconds']:9.2f}"
                  f"{r['files_per_s']:10.2f}{r['mb_per_s']:9.2f}")
        print(f"ratio vidpipe / baseline: {result['speedup']:.2f}x")
    out = REPO / "bench_out"
    out.mkdir(exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
