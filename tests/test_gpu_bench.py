"""The GPU benchmark script is tested on the CPU: it skips cleanly without CUDA and its rows run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO


def test_skips_cleanly_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_bench", "--n", "2"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "skipped: no CUDA device" in proc.stdout


def test_every_row_runs_on_cpu_and_counts_the_same_faces(tmp_path) -> None:
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_bench", "--device", "cpu", "--images",
                           str(REPO / "sample_media" / "photos"), "--n", "4", "--naive-n", "2", "--batch", "4",
                           "--decode-procs", "1", "--ray-batch", "4", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    try:
        import ray  # noqa: F401
        ray_rows = {"ray models b4"}
    except ImportError:  # an install without the [ray] extra: the row is left out, with a message
        ray_rows = set()
    assert set(rows) == {"naive", "batched", "decode", "pipeline b4"} | ray_rows
    assert all(r["images_per_s"] > 0 for r in rows.values())
    # The astronaut photo has a face: both vidpipe rows find at least one.
    assert rows["batched"]["faces"] >= 1 and rows["pipeline b4"]["faces"] >= 1
    # The Ray model stage (CPU actor here) finds them too, and gives every image a scene vector.
    if ray_rows:
        ray_row = rows["ray models b4"]
        assert ray_row["faces"] >= 1 and ray_row["scenes"] == ray_row["images"] == 4 and ray_row["gpus"] == 0
