"""``python -m bench`` (``make bench``): every benchmark, each against its named baseline."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

BENCHES = [
    ("ingest (faces and scenes off)", "bench.ingest_bench", []),
    ("faces", "bench.eval_faces", ["--timing"]),
    ("video", "bench.video_bench", []),
    ("scenes", "bench.eval_scenes", ["--quick"]),
    ("index", "bench.index_bench", []),
    ("engines (local vs ray)", "bench.engine_bench", []),
    ("archives (one pass vs one open per member)", "bench.archive_bench", []),
]


def main() -> int:
    failed = []
    for title, module, args in BENCHES:
        if importlib.util.find_spec(module) is None:
            print(f"\n== {title}: not available in this version ({module})")
            continue
        print(f"\n== {title}: python -m {module} {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, "-m", module, *args]).returncode != 0:
            failed.append(module)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
