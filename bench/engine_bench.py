"""Ingest throughput of ``--engine ray`` against ``--engine local`` (the named baseline).

Same files, same worker count, measured in the same run: each contender is ``vidpipe ingest``
timed end to end as a subprocess into a fresh case (start-up, Ray's included, and index build
counted). Two workloads: hashes/EXIF/perceptual hashes with faces off (../shared/data/exif and
../shared/data/phash) and a small faces-on set (faces/dlib_detection, faces/facenet_pytorch).
On one machine Ray can only add overhead (its start-up and an extra hop per task); the point of
the engine is more machines, which this benchmark does not have.

    python -m bench.engine_bench [--data DIR] [--workers N] [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = {
    "no-faces": (("exif", "phash"), ["--no-faces"]),
    "faces": (("faces/dlib_detection", "faces/facenet_pytorch"), []),
}


def ingest(sources: list[Path], engine: str, workers: int, extra: list[str]) -> tuple[float, dict]:
    """Seconds for one ``vidpipe ingest`` into a new case, and its summary."""
    case = Path(tempfile.mkdtemp(prefix=f"bench-engine-{engine}-"))
    try:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "vidpipe", "ingest", *map(str, sources), "--case", str(case),
                               "--no-scenes", "--json", "--workers", str(workers), "--engine", engine, *extra],
                              capture_output=True, text=True, cwd=REPO)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"ingest --engine {engine} exited {proc.returncode}: {proc.stderr[-2000:]}")
        return elapsed, json.loads(proc.stdout)
    finally:
        shutil.rmtree(case, ignore_errors=True)


def ray_startup_s(workers: int) -> float:
    """Seconds from nothing to every Ray actor answering one no-op task (the engine's fixed cost)."""
    from vidpipe.pipeline.ray_pool import RayPool

    t0 = time.perf_counter()
    with RayPool({"noop": len}, workers) as pool:
        for i in range(workers):
            pool.submit(i, "noop", "")
        while pool.pending:
            list(pool.results())
        return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("VIDPIPE_EVAL_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; the best counts")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (args.data / "README.md").exists():
        print(f"engine benchmark: evaluation data not found at {args.data}; skipped")
        return 0
    try:
        import ray  # noqa: F401
    except ImportError:
        print("engine benchmark: ray is not installed; skipped (pip install -r requirements.lock)")
        return 0
    result: dict = {"cpus": os.cpu_count(), "workers": args.workers,
                    "ray_startup_s": round(ray_startup_s(args.workers), 2), "workloads": {}}
    for name, (subdirs, extra) in WORKLOADS.items():
        sources = [args.data / sub for sub in subdirs]
        files = sum(1 for s in sources for p in s.rglob("*") if p.is_file())
        row: dict = {"sources": [str(s) for s in sources], "files": files}
        for engine in ("local", "ray"):
            runs = [ingest(sources, engine, args.workers, extra) for _ in range(max(1, args.repeat))]
            seconds, summary = min(runs, key=lambda r: r[0])
            row[engine] = {"seconds": round(seconds, 2), "files_per_s": round(files / seconds, 2),
                           "in_run_elapsed_s": summary["elapsed_s"], "faces": summary["faces"],
                           "ok": summary["ok"]}
        row["ratio_ray_over_local"] = round(row["ray"]["files_per_s"] / row["local"]["files_per_s"], 3)
        row["ratio_without_ray_startup"] = round(
            row["local"]["seconds"] / max(0.01, row["ray"]["seconds"] - result["ray_startup_s"]), 3)
        result["workloads"][name] = row
    if args.json:
        print(json.dumps(result))
    else:
        print(f"engine benchmark: {os.cpu_count()} CPUs, --workers {args.workers}, best of {args.repeat}")
        print(f"{'workload':10s}{'files':>7s}{'local s':>9s}{'local f/s':>11s}{'ray s':>8s}{'ray f/s':>9s}"
              f"{'ray/local':>11s}{'w/o start-up':>14s}")
        for name, r in result["workloads"].items():
            print(f"{name:10s}{r['files']:7d}{r['local']['seconds']:9.2f}{r['local']['files_per_s']:11.2f}"
                  f"{r['ray']['seconds']:8.2f}{r['ray']['files_per_s']:9.2f}{r['ratio_ray_over_local']:10.2f}x"
                  f"{r['ratio_without_ray_startup']:13.2f}x")
        print(f"ray start-up (local instance + {args.workers} actors, in the ray columns): "
              f"{result['ray_startup_s']:.2f} s")
    out = REPO / "bench_out"
    out.mkdir(exist_ok=True)
    (out / "engine.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
