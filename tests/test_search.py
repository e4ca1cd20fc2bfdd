"""`vidpipe search` and `vidpipe calibrate faces` end to end on a case ingested from sample_media.

One case is ingested per module (faces on); face models are loaded once in-process for the
queries that do not need to exercise the command line itself.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, copy_case, run_cli, run_json
from PIL import Image

from vidpipe.extract.hashers import PDQ_MATCH_DISTANCE
from vidpipe.search.api import search
from vidpipe.search.faces import DEFAULT_FACE_CALIBRATION

SAMPLE = REPO / "sample_media"


@pytest.fixture(scope="module")
def case(tmp_path_factory, sample_case_template) -> Path:
    # The session's ingest of sample_media (conftest: the same command this module used to run), copied.
    template, summary = sample_case_template
    assert summary["status"] == "completed" and summary["faces"] >= 3
    return copy_case(template, tmp_path_factory.mktemp("search") / "case")


@pytest.fixture(scope="module")
def face_models():
    from vidpipe.search.faces import load_face_models

    return load_face_models("cpu")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_contract(result: dict, mode: str) -> None:
    assert set(result) >= {"query", "threshold", "results"}
    assert result["query"]["mode"] == mode and os.path.isabs(result["query"]["path"])
    for hit in result["results"]:
        assert {"rank", "score", "query_face", "media", "box"} <= set(hit)
        assert set(hit["media"]) >= {"sha256", "path", "kind", "video_time_s"}
        assert os.path.isabs(hit["media"]["path"].split("!")[0])


def test_face_search_finds_the_astronaut_from_a_degraded_copy(case, tmp_path):
    # Crop around the face, halve the size, re-encode at JPEG quality 40.
    with Image.open(SAMPLE / "photos" / "astronaut.jpg") as im:
        w, h = im.size
        copy = im.convert("RGB").crop((int(w * 0.15), 0, int(w * 0.85), int(h * 0.8)))
    copy = copy.resize((copy.width // 2, copy.height // 2), Image.Resampling.BILINEAR)
    query = tmp_path / "astronaut_q40.jpg"
    copy.save(query, quality=40)
    result = run_json("search", "--case", str(case), "--query", str(query), "--mode", "face", "--json")
    _check_contract(result, "face")
    assert len(result["query"]["faces"]) == 1
    # astronaut.jpg, misc/truncated.jpg (a 384 px copy), the zip's portrait.jpg (a crop) and the
    # astronaut shot of both sample videos are one person (tools/make_sample_media.py); which copy
    # ranks first depends on scale, so the test asks that these are the top five, all above the
    # threshold, and nothing else is.
    same = {str(SAMPLE / p) for p in ("photos/astronaut.jpg", "misc/truncated.jpg", "misc/archive.zip!portrait.jpg",
                                      "video/clip.mp4", "video/clip_small.mp4")}
    top = result["results"][0]
    assert top["rank"] == 1 and top["query_face"] == 0
    assert {hit["media"]["path"] for hit in result["results"][:5]} == same
    threshold = result["threshold"]
    assert threshold == DEFAULT_FACE_CALIBRATION[top_model(result)]["threshold"]
    assert result["threshold_source"]["calibration_id"] is None and result["threshold_source"]["default"]
    by_path = {hit["media"]["path"]: hit for hit in result["results"]}
    for path in same:
        assert by_path[path]["score"] >= threshold and by_path[path]["above_threshold"] is True
    assert all(not hit["above_threshold"] for hit in result["results"][5:])
    assert len(by_path) == len(result["results"])  # each media item once per query face
    assert result["indexes"]["face"]["kind"] == "flat-ip" and result["indexes"]["face"]["exact"] is True


def top_model(result: dict) -> str:
    return result["threshold_source"]["model_key"].rpartition("@")[0]


def test_face_search_with_no_face_returns_nothing(case, face_models):
    result = search(case, SAMPLE / "photos" / "chelsea.jpg", "face", models=face_models)
    assert result["results"] == [] and result["query"]["faces"] == []
    from vidpipe.cli.search import format_table

    text = format_table(result)
    assert "no results" in text and "threshold" in text


def test_multi_face_query_gives_results_per_query_face(case, face_models, eval_data):
    query = eval_data / "faces" / "dlib_detection" / "2008_001322.jpg"  # 3 labelled faces
    one = search(case, query, "face", top_k=1, models=face_models)
    _check_contract(one, "face")
    n = len(one["query"]["faces"])
    assert n >= 2
    # One entry per query face (the case holds 3 faces of one other person); per-item collapsing and
    # ranking are checked in test_face_hits_collapse_per_media_item_but_keep_video_frames.
    assert sorted(hit["query_face"] for hit in one["results"]) == list(range(n))
    assert all(hit["rank"] == 1 and hit["above_threshold"] is False for hit in one["results"])
    boxes = [tuple(face["box"]) for face in one["query"]["faces"]]
    assert len(set(boxes)) == n


def test_near_dup_search_finds_the_rocket(case, tmp_path):
    query = tmp_path / "q" / "rocket_q25.jpg"
    query.parent.mkdir()
    shutil.copy(SAMPLE / "near_dups" / "rocket_q25.jpg", query)
    before = _sha(query)
    result = run_json("search", "--case", str(case), "--query", str(query), "--mode", "near-dup", "--json")
    _check_contract(result, "near-dup")
    assert result["threshold_distance"] == PDQ_MATCH_DISTANCE
    assert result["threshold"] == pytest.approx(1 - PDQ_MATCH_DISTANCE / 256)
    by_path = {hit["media"]["path"]: hit for hit in result["results"]}
    rocket = by_path[str(SAMPLE / "near_dups" / "rocket.jpg")]  # the smallest of rocket.jpg / rocket_copy.jpg
    assert rocket["signal"] == "pdq" and rocket["distance"] <= PDQ_MATCH_DISTANCE and rocket["above_threshold"]
    assert rocket["score"] == pytest.approx(1 - rocket["distance"] / 256)
    flip = by_path[str(SAMPLE / "near_dups" / "rocket_flip.jpg")]  # found through the dihedral hashes
    assert flip["distance"] <= PDQ_MATCH_DISTANCE and flip["above_threshold"]
    assert by_path[str(SAMPLE / "near_dups" / "rocket_crop10.jpg")]["above_threshold"] is False
    assert all(0.0 <= hit["score"] <= 1.0 for hit in result["results"])
    assert [hit["score"] for hit in result["results"]] == sorted((hit["score"] for hit in result["results"]),
                                                                  reverse=True)
    assert _sha(query) == before and os.listdir(query.parent) == ["rocket_q25.jpg"]  # the query is only read


def test_usage_errors_and_missing_weights(case, tmp_path):
    q = str(SAMPLE / "photos" / "astronaut.jpg")
    video = str(SAMPLE / "video" / "clip.mp4")
    proc = run_cli("search", "--case", str(case), "--query", video, "--mode", "scene", "--json", check=False)
    assert proc.returncode == 2 and "needs an image query" in proc.stderr
    assert json.loads(proc.stdout)["code"] == 2  # with --json an error is one JSON object on stdout
    assert run_cli("search", "--case", str(case), "--query", q, "--mode", "bogus", check=False).returncode == 2
    assert run_cli("search", "--case", str(case), "--query", q, "--mode", "near-dup", "--top-k", "0",
                   check=False).returncode == 2
    assert run_cli("search", "--case", str(case), "--query", str(tmp_path / "nope.jpg"), "--mode", "near-dup",
                   check=False).returncode == 2
    proc = run_cli("search", "--case", str(case), "--query", q, "--mode", "face", "--json", check=False,
                   env={"VIDPIPE_FACENET_WEIGHTS": str(tmp_path / "missing.pt")})
    assert proc.returncode == 3 and "weights" in proc.stderr.lower()
    assert run_cli("calibrate", "faces", "--case", str(case), "--labels", str(tmp_path / "none.csv"),
                   check=False).returncode == 2


def test_calibration_is_stored_and_used(case, face_models, eval_data, tmp_path):
    from vidpipe.search.calibrate import calibrate_faces

    case_copy = tmp_path / "case"
    shutil.copytree(case, case_copy)
    faces = eval_data / "faces"
    picks = {"img5.jpg": "a", "img11.jpg": "a", "img12.jpg": "b", "img55.jpg": "b", "img62.jpg": "c",
             "img16.jpg": "c"}
    labels = tmp_path / "labels" / "labels.csv"
    labels.parent.mkdir()
    with labels.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "identity"])
        for name, who in picks.items():
            writer.writerow([os.path.relpath(faces / "deepface" / name, labels.parent), who])
        writer.writerow(["ignored.jpg", ""])  # empty identity: ignored
    import sqlite3

    db = sqlite3.connect(case_copy / "case.sqlite", isolation_level=None)
    db.execute("INSERT INTO calibrations(kind, model_key, threshold, target, created_utc, active) "
               "VALUES ('face', ?, 0.9, 'FAR=0.5', '2026-01-01T00:00:00Z', 1)", (face_models.model_key,))
    result = calibrate_faces(case_copy, labels, target_far=0.1, models=face_models)
    assert result["n_genuine"] == 3 and result["n_impostor"] == 12 and result["failed_to_enrol"] == []
    assert result["far"] <= 0.1 and 0.0 <= result["frr"] <= 1.0 and -1.0 <= result["threshold"] <= 1.0
    rows = db.execute("SELECT calibration_id, active, n_genuine, far FROM calibrations ORDER BY calibration_id").fetchall()
    assert [r[1] for r in rows] == [0, 1] and rows[1][0] == result["calibration_id"]  # the older one is retired
    assert rows[1][2] == 3 and rows[1][3] == pytest.approx(result["far"])
    out = search(case_copy, SAMPLE / "photos" / "astronaut.jpg", "face", models=face_models)
    assert out["threshold"] == pytest.approx(result["threshold"])
    assert out["threshold_source"]["calibration_id"] == result["calibration_id"]
    assert out["threshold_source"]["target"] == "FAR=0.1"
    assert json.dumps(out)  # JSON-serialisable as the CLI prints it
    assert np.isfinite(out["results"][0]["score"])


def test_face_hits_collapse_per_media_item_but_keep_video_frames(tmp_path):
    """One result per media item and query face (its best face), except separate frames of a video."""
    from test_indexer import _insert_face, _make_case

    from vidpipe.search.build import ensure_indexes
    from vidpipe.search.faces import face_hits

    paths, conn = _make_case(tmp_path / "case", n_media=3, faces_per_media=0)
    rng = np.random.default_rng(7)
    target = rng.standard_normal(512).astype(np.float32)
    target /= np.linalg.norm(target)

    def near(noise):
        v = target + noise * rng.standard_normal(512).astype(np.float32)
        return v / np.linalg.norm(v)

    image, video, other = (f"{m:064x}" for m in range(3))
    _insert_face(conn, image, 0, near(0.01), "run-1")
    _insert_face(conn, image, 1, near(0.02), "run-1")           # a second, weaker face of the same image
    _insert_face(conn, video, 0, near(0.01), "run-1", video_time_s=1.0)
    _insert_face(conn, video, 1, near(0.03), "run-1", video_time_s=1.0)
    _insert_face(conn, video, 0, near(0.02), "run-1", video_time_s=2.0)
    _insert_face(conn, other, 0, near(10.0), "run-1")
    index = ensure_indexes(paths, conn, ("face",))["face"].index
    hits = face_hits(conn, index, target, 0, 10, 0.5)
    keys = [(h["media"]["sha256"], h["media"]["video_time_s"]) for h in hits]
    assert sorted(keys, key=str) == sorted([(image, None), (video, 1.0), (video, 2.0), (other, None)], key=str)
    best_image = next(h for h in hits if h["media"]["sha256"] == image)
    assert best_image["face_id"] == conn.execute(
        "SELECT face_id FROM faces WHERE sha256 = ? AND face_index = 0", (image,)).fetchone()[0]
    assert [h["above_threshold"] for h in hits] == [True, True, True, False]
    assert len(face_hits(conn, index, target, 0, 2, 0.5)) == 2
