"""Retries of sandbox-limit failures, and refusal of absurd limits (issue 11, item 7).

A file that failed on a limit (here: ``--timeout`` far below its decode time) is retried once on
the next run with larger limits, once per run configuration; a run whose limits no file could
meet is refused with exit 2 before a case exists."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidpipe.cli.main import main
from vidpipe.errors import UsageError


@pytest.fixture(scope="module")
def slow_image(tmp_path_factory) -> Path:
    """A 120-megapixel PNG (~2 MB): hashing it is instant, decoding it takes ~0.5 s on a fast core and
    its perceptual hashes more, above a 0.1 s (or, retried, 0.4 s) limit."""
    evidence = tmp_path_factory.mktemp("retry") / "evidence"
    evidence.mkdir()
    h, w = 10000, 12000
    row = (np.arange(w) * 255 // w).astype(np.uint8)
    col = (np.arange(h) * 255 // h).astype(np.uint8)
    pixels = np.empty((h, w, 3), np.uint8)
    pixels[..., 0] = row[None, :]
    pixels[..., 1] = col[:, None]
    pixels[..., 2] = row[None, :] ^ col[:, None]
    Image.fromarray(pixels).save(evidence / "big.png", compress_level=1)
    return evidence


def _ingest(capsys, evidence: Path, case: Path, *extra: str) -> dict:
    code = main(["ingest", str(evidence), "--case", str(case), "--no-faces", "--no-scenes", "--workers", "1",
                 "--json", *extra])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def _media(case: Path) -> tuple[str, str, dict]:
    with sqlite3.connect(case / "case.sqlite") as conn:
        status, reason, detail = conn.execute("SELECT status, reason, detail FROM media").fetchone()
    return status, reason, json.loads(detail or "{}")


def _hash_stage_failed(case: Path) -> bool:
    with sqlite3.connect(case / "case.sqlite") as conn:
        return conn.execute("SELECT count(*) FROM media").fetchone()[0] == 0


def test_timeout_is_retried_once_per_configuration_then_ok_with_larger_limits(slow_image, tmp_path, capsys):
    case = tmp_path / "case"
    first = _ingest(capsys, slow_image, case, "--timeout", "0.1")
    assert first["failed"] == {"timeout": 1} and first["retried"] == 0
    if _hash_stage_failed(case):
        # Seen once under a loaded 2-worker run: hashing a small file passed 0.05 s, so the item,
        # not its content, failed; that retry path is another scenario (it then hashes fine at 4x the time).
        pytest.skip("the hash task, not the decode, ran past 0.1 s on this loaded machine")

    # Same configuration: one retry with 4x the time (0.4 s), still too little; recorded on the content.
    second = _ingest(capsys, slow_image, case, "--timeout", "0.1")
    assert second["retried"] == 1 and second["failed"] == {"timeout": 1}
    status, reason, detail = _media(case)
    assert (status, reason) == ("failed", "timeout")
    assert detail["retry"]["after"] == "failed:timeout" and detail["retry"]["timeout_s"] == pytest.approx(0.4)
    assert detail["retry"]["worker_memory_mb"] == 2 * 2048

    # Same configuration again: already retried under it, so no new work.
    third = _ingest(capsys, slow_image, case, "--timeout", "0.1")
    assert third["retried"] == 0 and third["failed"] == {"timeout": 1}

    # --no-retry-failed: nothing is retried even under a new configuration.
    off = _ingest(capsys, slow_image, case, "--no-retry-failed")
    assert off["retried"] == 0 and off["failed"] == {"timeout": 1}

    # A normal run (a new configuration) retries it once more, with limits it can meet.
    fourth = _ingest(capsys, slow_image, case)
    assert fourth["retried"] == 1 and fourth["ok"] == 1 and fourth["failed"] == {}, fourth
    status, reason, detail = _media(case)
    assert (status, reason) == ("ok", None) and detail["retry"]["timeout_s"] == pytest.approx(240.0)


@pytest.mark.parametrize("args", [
    ["--timeout", "0"], ["--timeout", "-1"], ["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "soon"],
    ["--worker-memory-mb", "1"], ["--worker-memory-mb", "-512"], ["--worker-memory-mb", "2.5"],
    ["--workers", "0"], ["--workers", "-2"], ["--workers", "many"], ["--max-pixels", "0"],
])
def test_nonsensical_limits_exit_2_and_create_no_case(args, sample_media, tmp_path, capsys):
    case = tmp_path / "case"
    with pytest.raises(SystemExit) as exc:
        main(["ingest", str(sample_media / "photos"), "--case", str(case), "--json", *args])
    assert exc.value.code == 2
    assert not case.exists()
    assert args[0] in capsys.readouterr().err


def test_absurd_limits_are_refused_by_the_config_too(tmp_path):
    from vidpipe.pipeline.runner import IngestConfig

    for bad in ({"task_timeout_s": 0}, {"worker_memory_mb": 1}, {"workers": 0}, {"task_timeout_s": float("nan")},
                {"video_budget_scale": -1.0}, {"worker_memory_mb": "2048"}):
        with pytest.raises(UsageError):
            IngestConfig(sources=[str(tmp_path)], **bad)


def test_cli_exit_code_is_2_in_a_real_process(sample_media, tmp_path):
    case = tmp_path / "case"
    proc = subprocess.run([sys.executable, "-m", "vidpipe", "ingest", str(sample_media), "--case", str(case),
                           "--timeout", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--timeout" in proc.stderr and not case.exists()
