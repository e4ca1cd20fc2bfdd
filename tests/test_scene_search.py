"""Scene stage end to end: ingest stores masked room vectors, `search --mode scene` finds the room.

Uses the rendered rooms of sample_media (room A: three views, room B: two views plus one in an
archive; the rendered video pans room A) and a person (the astronaut photo's texture, so that the
face detector finds a face and the body is masked) pasted over the query's centre.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_cli, run_json
from PIL import Image

sys.path.insert(0, str(REPO))
from bench.eval_scenes import paste_person  # noqa: E402

SAMPLE = REPO / "sample_media"


@pytest.fixture(scope="module")
def scene_case(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("scenes")
    evidence = root / "evidence"
    shutil.copytree(SAMPLE / "rooms", evidence / "rooms")
    shutil.copytree(SAMPLE / "photos", evidence / "photos")
    labels = root / "hotels.csv"
    with labels.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "place", "chain", "city"])
        w.writerow(["rooms/room_a_1.jpg", "Hotel Alpha", "Alpha Group", "Springfield"])
        w.writerow(["rooms/room_b_2.jpg", "Hotel Bravo", "", "Shelbyville"])
        w.writerow(["rooms/not_there.jpg", "Hotel Nowhere", "", ""])
    case = root / "case"
    summary = run_json("ingest", str(evidence), "--case", str(case), "--json", "--places", str(labels))
    texture = np.asarray(Image.open(SAMPLE / "photos" / "astronaut.jpg").convert("RGB"))
    queries = {}
    for name in ("room_a_1", "room_b_1"):
        room = np.asarray(Image.open(SAMPLE / "rooms" / f"{name}.jpg").convert("RGB"))
        occluded, _ = paste_person(room, texture, cx_frac=0.5, head_frac=0.16)
        path = root / f"query_{name}_person.jpg"
        Image.fromarray(occluded).save(path, quality=90)
        queries[name] = path
    return {"case": case, "summary": summary, "queries": queries, "evidence": evidence}


def _search(case: Path, query: Path, *extra: str) -> dict:
    return run_json("search", "--case", str(case), "--query", str(query), "--mode", "scene", "--json", *extra)


def test_ingest_stores_one_masked_vector_per_image(scene_case):
    s = scene_case["summary"]
    assert s["status"] == "completed"
    conn = sqlite3.connect(scene_case["case"] / "case.sqlite")
    images = conn.execute("SELECT COUNT(*) FROM media WHERE kind='image' AND status IN ('ok','partial')").fetchone()[0]
    assert s["scenes"] == images == conn.execute("SELECT COUNT(DISTINCT sha256) FROM scenes").fetchone()[0]
    assert s["indexes"]["scene"]["vectors"] == images
    # The astronaut portrait has a face: its body region is recorded as masked out of the room vector.
    masked = conn.execute("SELECT s.masked FROM scenes s JOIN items i ON i.sha256 = s.sha256 "
                          "WHERE i.locator LIKE '%astronaut.jpg'").fetchone()[0]
    assert json.loads(masked), "the person's body box was not recorded"
    model = conn.execute("SELECT name, role, weights_sha256 FROM models WHERE role='scene_embedder'").fetchone()
    assert model[0].startswith("efficientnet-lite0") and len(model[2]) == 64


def test_occluded_room_finds_its_source_first_with_geometry(scene_case):
    out = _search(scene_case["case"], scene_case["queries"]["room_a_1"])
    assert out["query"]["masked"], "the pasted person was not masked out of the query"
    top = out["results"][0]
    assert top["media"]["path"].endswith("rooms/room_a_1.jpg")
    assert top["above_threshold"] and top["verified"] and top["inliers"] > 15
    assert top["matches"] and len(top["matches"][0]) == 4
    assert top["place"]["name"] == "Hotel Alpha" and top["place"]["detail"]["city"] == "Springfield"
    assert out["threshold"] == pytest.approx(0.83)
    # The other views of room A rank above every view of room B.
    paths = [r["media"]["path"] for r in out["results"]]
    first_b = min(i for i, p in enumerate(paths) if "room_b" in p)
    assert all(i < first_b for i, p in enumerate(paths) if "room_a" in p)


def test_unrelated_rooms_stay_below_the_threshold(scene_case):
    for query, other in (("room_a_1", "room_b"), ("room_b_1", "room_a")):
        out = _search(scene_case["case"], scene_case["queries"][query])
        unrelated = [r for r in out["results"] if other in r["media"]["path"] or "photos/" in r["media"]["path"]]
        assert unrelated and not any(r["above_threshold"] for r in unrelated), (query, unrelated[:2])


def test_global_only_ranking_still_finds_the_source(scene_case):
    from vidpipe.search.api import search

    out = search(scene_case["case"], scene_case["queries"]["room_b_1"], "scene", 5, rerank=False)
    assert out["results"][0]["media"]["path"].endswith("rooms/room_b_1.jpg")
    assert all(r["inliers"] is None and not r["verified"] for r in out["results"])
    assert out["rerank"]["top_k"] == 0


def test_places_report_unmatched_rows_and_reimport_is_idempotent(scene_case):
    places = scene_case["summary"]["places"]
    assert places["labelled"] == 2 and places["rows"] == 3
    assert [u["path"] for u in places["unmatched"]] == ["rooms/not_there.jpg"]
    conn = sqlite3.connect(scene_case["case"] / "case.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM places").fetchone()[0] == 2


def test_malformed_places_file_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,hotel\nx.jpg,Somewhere\n")
    proc = run_cli("ingest", str(SAMPLE / "rooms"), "--case", str(tmp_path / "c"), "--places", str(bad), "--json",
                   check=False)
    assert proc.returncode == 2 and "place" in proc.stderr
    assert not (tmp_path / "c" / "case.sqlite").exists()


def test_scenes_added_later_keep_the_faces(tmp_path):
    evidence = tmp_path / "ev"
    shutil.copytree(SAMPLE / "photos", evidence)
    case = tmp_path / "case"
    first = run_json("ingest", str(evidence), "--case", str(case), "--json", "--no-scenes")
    assert first["scenes"] == 0 and first["faces"] > 0
    conn = sqlite3.connect(case / "case.sqlite")
    faces_before = conn.execute("SELECT face_id, sha256, embedding FROM faces ORDER BY face_id").fetchall()
    second = run_json("ingest", str(evidence), "--case", str(case), "--json")
    assert second["status"] == "completed" and second["scenes"] == second["images"]
    assert conn.execute("SELECT face_id, sha256, embedding FROM faces ORDER BY face_id").fetchall() == faces_before
    out = run_json("search", "--case", str(case), "--query", str(SAMPLE / "rooms" / "room_a_1.jpg"),
                   "--mode", "scene", "--json")
    assert out["indexes"]["scene"]["vectors"] == second["images"]


def test_case_without_scene_vectors_warns(tmp_path):
    case = tmp_path / "case"
    run_json("ingest", str(SAMPLE / "rooms"), "--case", str(case), "--json", "--no-scenes", "--no-faces")
    out = _search(case, SAMPLE / "rooms" / "room_a_1.jpg")
    assert out["results"] == [] and out["warnings"]
