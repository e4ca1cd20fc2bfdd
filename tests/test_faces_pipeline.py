"""Faces inside ingest: found, stored with provenance, exported, and resumable per image."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import REPO, copy_case, export_records, run_json

FACE_FILES = {"photos/astronaut.jpg", "misc/archive.zip!portrait.jpg", "misc/truncated.jpg",
              "video/clip.mp4", "video/clip_small.mp4"}  # the videos show the astronaut from 1.6 s to 3.2 s


def faces_by_path(records: list[dict]) -> dict[str, list[dict]]:
    out = {}
    for r in records:
        for p in r["paths"]:
            rel = p.split("sample_media/", 1)[-1]
            out[rel] = r["faces"]
    return out


@pytest.fixture(scope="module")
def face_case(tmp_path_factory, sample_case_template) -> Path:
    # The session's ingest of sample_media (conftest; all default stages), copied for this module.
    template, summary = sample_case_template
    assert summary["status"] == "completed"
    assert summary["faces"] == 5
    return copy_case(template, tmp_path_factory.mktemp("faces") / "case")


def test_faces_found_where_expected_and_nowhere_else(face_case: Path) -> None:
    found = {path for path, faces in faces_by_path(export_records(face_case)).items() if faces}
    assert found == FACE_FILES


def test_face_records_carry_boxes_scores_and_model_provenance(face_case: Path) -> None:
    records = faces_by_path(export_records(face_case))
    face = records["photos/astronaut.jpg"][0]
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512  # astronaut.jpg is 512x512
    assert face["det_score"] >= 0.9 and face["video_time_s"] is None
    conn = sqlite3.connect(face_case / "case.sqlite")
    models = dict(conn.execute("SELECT role, weights_sha256 FROM models").fetchall())
    assert len(models["face_embedder"]) == 64 and len(models["face_detector"]) == 64
    info = json.loads(conn.execute("SELECT info FROM models WHERE role='face_embedder'").fetchone()[0])
    assert info["licence"] and info["training_data"]
    dims = {len(row[0]) for row in conn.execute("SELECT embedding FROM faces")}
    assert dims == {512 * 4}


def test_faces_added_later_equal_faces_found_in_one_pass(face_case: Path, tmp_path: Path) -> None:
    """An ingest without faces, then with: the face stage resumes per image (the kill-resume path)."""
    case = tmp_path / "two-pass"
    run_json("ingest", str(REPO / "sample_media"), "--case", str(case), "--no-faces", "--json")
    second = run_json("ingest", str(REPO / "sample_media"), "--case", str(case), "--json")
    assert second["faces"] == 5 and second["unfinished"] == 0
    one = faces_by_path(export_records(face_case))
    two = faces_by_path(export_records(case))
    assert one.keys() == two.keys()
    for path, faces in one.items():
        assert len(faces) == len(two[path])
        for a, b in zip(faces, two[path]):
            assert a["box"] == pytest.approx(b["box"], abs=1.0)


def test_missing_weights_exit_3_with_instructions(tmp_path: Path) -> None:
    from conftest import run_cli

    proc = run_cli("ingest", str(REPO / "sample_media" / "photos"), "--case", str(tmp_path / "c"), "--json",
                   check=False, env={"VIDPIPE_FACENET_WEIGHTS": str(tmp_path / "nowhere.pt")})
    assert proc.returncode == 3
    assert "nowhere.pt" in proc.stderr and json.loads(proc.stdout)["code"] == 3  # the --json error object
