"""Video time budget by duration and resolution (issue 11, item 6): a video that runs out of its
budget keeps what was found (keyframes, vPDQ, face inputs) and ends ``partial: timeout`` with the
time reached; the budget of a long video is not its file size."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from vidpipe.testing import make_checkerboard_video
from vidpipe.video.budget import MAX_DURATION_S, hard_timeout_s, soft_budget_s


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """20 s of 640x360 at 30 fps, alone in its evidence folder (never committed)."""
    evidence = tmp_path_factory.mktemp("budget") / "evidence"
    evidence.mkdir()
    return make_checkerboard_video(evidence / "clip.mp4")


def test_budget_follows_duration_and_resolution_not_size() -> None:
    # The case: a 24-minute 720p H.264 of 49 MB had 61 s by size (60 + 49e6 / 50e6).
    budget = soft_budget_s(1440.0, 1280, 720, 30.0, base_s=60.0, size_bytes=49_000_000)
    assert budget > 300, budget
    assert soft_budget_s(2880.0, 1280, 720, 30.0, 60.0) > budget               # longer -> more
    assert soft_budget_s(1440.0, 1920, 1080, 30.0, 60.0) > budget              # bigger frames -> more
    assert soft_budget_s(1440.0, 1280, 720, 30.0, 60.0, scale=4.0) == pytest.approx(4 * budget)
    # A forged duration buys no more than MAX_DURATION_S; an unknown one is estimated from the size.
    assert soft_budget_s(1e12, 1280, 720, 30.0, 60.0) == soft_budget_s(MAX_DURATION_S, 1280, 720, 30.0, 60.0)
    assert soft_budget_s(None, 1280, 720, 30.0, 60.0, size_bytes=49_000_000) > 60.0
    assert hard_timeout_s(budget, 60.0) > budget + 60.0


def test_worker_stops_at_its_soft_budget_and_keeps_what_it_found(clip: Path) -> None:
    from vidpipe.pipeline.tasks import ContentTask
    from vidpipe.pipeline.video_task import BUDGET_OPTION, process_video
    from vidpipe.sources.base import ItemRef
    from vidpipe.sources.limits import ArchiveLimits

    task = ContentTask("0" * 64, ItemRef(str(clip).encode()), "MP4", "video", ArchiveLimits(),
                       {"model_inputs": True, BUDGET_OPTION: 0.4})
    result = process_video(task)
    assert (result.status, result.reason) == ("partial", "timeout")
    assert 0 < result.detail["decoded_until_s"] < result.detail["duration_s"] == pytest.approx(20.0, abs=0.1)
    assert result.keyframes and result.vpdq and result.face_inputs
    assert max(r.time_s for r in result.keyframes) <= result.detail["decoded_until_s"]


def _ingest(case: Path, evidence: Path, **kw) -> dict:
    from vidpipe.pipeline.runner import IngestConfig, run_ingest

    config = IngestConfig(sources=[str(evidence)], workers=1, faces=False, scenes=False, **kw)
    return run_ingest(case, config, progress=False)


def test_ingest_with_tiny_budget_ends_partial_timeout_with_frames_kept(clip: Path, tmp_path: Path) -> None:
    # Budget scale chosen so the soft budget is about 0.4 s (base 60 s + ~2 s for 20 s of 640x360).
    summary = _ingest(tmp_path / "case", clip.parent, video_budget_scale=0.4 / 62, retry_failed=False)
    assert summary["partial_reasons"] == {"timeout": 1} and summary["status"] == "completed"
    conn = sqlite3.connect(tmp_path / "case" / "case.sqlite")
    sha, status, reason, detail = conn.execute("SELECT sha256, status, reason, detail FROM media").fetchone()
    detail = json.loads(detail)
    assert (status, reason) == ("partial", "timeout")
    assert 0 < detail["decoded_until_s"] < detail["duration_s"]
    assert conn.execute("SELECT COUNT(*) FROM frames WHERE sha256=?", (sha,)).fetchone()[0] >= 1
    assert conn.execute("SELECT COUNT(*) FROM vpdq WHERE sha256=?", (sha,)).fetchone()[0] >= 1


def test_default_budget_ingests_the_whole_clip(clip: Path, tmp_path: Path) -> None:
    summary = _ingest(tmp_path / "case", clip.parent)
    assert summary["ok"] == 1 and summary["partial"] == 0, summary
    conn = sqlite3.connect(tmp_path / "case" / "case.sqlite")
    assert conn.execute("SELECT MAX(time_s) FROM vpdq").fetchone()[0] >= 19.0
