"""Helpers for the UI tests: a small case built in code over sample_media, users, a fake search.

The case is made directly in the database (no ingest run), so the UI tests take seconds and do
not depend on the face models; the end-to-end browser test uses a real ingest instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ui.auth import add_user
from vidpipe.filetype import sniff
from vidpipe.store.casedb import open_case, utc_now

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_media"
APP = str(REPO / "ui" / "app.py")
PASSWORD = "correct horse battery"
ROLES = ("examiner", "analyst", "reviewer", "admin")
IMAGES = ["photos/astronaut.jpg", "photos/chelsea.jpg", "photos/coffee.jpg", "rooms/room_a_1.jpg"]
VIDEO = "video/clip.mp4"
ASTRONAUT_FACE = (180.0, 60.0, 300.0, 220.0)  # roughly the face in skimage's astronaut (512x512)


def build_case(root: Path) -> sqlite3.Connection:
    """A migrated case holding four photos, one video and one face, plus one user per role."""
    _, conn = open_case(root, create=True)
    run_id = "r" * 32
    conn.execute("INSERT INTO runs(run_id, command, started_utc, ended_utc, status, operator, argv, tool_version, "
                 "libraries, config, config_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                 (run_id, "ingest", utc_now(), utc_now(), "completed", "tester", "[]", "0.1.0", "{}", "{}", "0" * 64))
    conn.execute("INSERT INTO sources(source_id, root, root_bytes, added_run) VALUES (1,?,?,?)",
                 (str(SAMPLE), os.fsencode(SAMPLE), run_id))
    for rel in [*IMAGES, VIDEO]:
        path = SAMPLE / rel
        data = path.read_bytes()
        ftype = sniff(data[:4096])
        sha = hashlib.sha256(data).hexdigest()
        width = height = None
        if ftype.kind == "image":
            with Image.open(path) as im:
                width, height = im.size
        exif = json.dumps({"make": "Canon", "gps": {"lat": -22.9068, "lon": -43.1729, "alt": 11.5}}) \
            if rel.endswith("astronaut.jpg") else None
        conn.execute("INSERT INTO media(sha256, md5, sha1, size, mime, label, kind, state, status, width, height, "
                     "exif, first_run, done_run) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     (sha, hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(), len(data), ftype.mime,
                      ftype.label, ftype.kind, "done", "ok", width, height, exif, run_id, run_id))
        conn.execute("INSERT INTO items(locator, locator_bytes, ref, source_id, fs_kind, size, state, status, "
                     "sha256, first_run, last_run) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                     (str(path), os.fsencode(path), os.fsencode(path), 1, "file", len(data), "final", "ok", sha,
                      run_id, run_id))
    conn.execute("INSERT INTO items(locator, locator_bytes, ref, source_id, fs_kind, state, status, reason, "
                 "first_run, last_run) VALUES (?,?,?,?,?,?,?,?,?,?)",
                 (str(SAMPLE / "misc/fake.jpg"), os.fsencode(SAMPLE / "misc/fake.jpg"),
                  os.fsencode(SAMPLE / "misc/fake.jpg"), 1, "file", "final", "failed", "decode_error", run_id, run_id))
    conn.execute("INSERT INTO models(model_key, name, role, info, first_run) VALUES ('det@0','det','face_detector',"
                 "'{}',?), ('emb@0','emb','face_embedder','{}',?)", (run_id, run_id))
    vec = np.ones(512, np.float32) / np.sqrt(512)
    conn.execute("INSERT INTO faces(sha256, frame_key, face_index, x1, y1, x2, y2, det_score, detector, embedder, "
                 "embedding, run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                 (sha_of(IMAGES[0]), "", 0, *ASTRONAUT_FACE, 0.99, "det@0", "emb@0", vec.tobytes(), run_id))
    for role in ROLES:
        add_user(conn, role, role, PASSWORD)
    return conn


def serve_case(root: Path, monkeypatch, prepare=None) -> Path:
    """Build the test case at ``root`` and point the app at it (``VIDPIPE_UI_CASE``).

    ``prepare(conn)`` adds what a test file needs beyond ``build_case``; it is committed."""
    conn = build_case(root)
    if prepare is not None:
        prepare(conn)
        conn.commit()
    conn.close()
    monkeypatch.setenv("VIDPIPE_UI_CASE", str(root))
    return root


def sha_of(rel: str) -> str:
    return hashlib.sha256((SAMPLE / rel).read_bytes()).hexdigest()


def fake_search(case_dir, query, mode, top_k=20, **_kw) -> dict:
    """The contract's search JSON: the astronaut above the threshold, the cat below, a video frame."""
    face_id = 1
    results = [
        {"rank": 1, "score": 0.91, "query_face": 0, "box": list(ASTRONAUT_FACE), "face_id": face_id,
         "above_threshold": True, "media": {"sha256": sha_of(IMAGES[0]), "path": str(SAMPLE / IMAGES[0]),
                                            "kind": "image", "video_time_s": None}},
        {"rank": 2, "score": 0.62, "query_face": 0, "box": [200.0, 60.0, 280.0, 140.0], "face_id": None,
         "above_threshold": True, "media": {"sha256": sha_of(VIDEO), "path": str(SAMPLE / VIDEO),
                                            "kind": "video", "video_time_s": 2.0}},
        {"rank": 3, "score": 0.21, "query_face": 0, "box": [10.0, 10.0, 90.0, 90.0], "face_id": None,
         "above_threshold": False, "media": {"sha256": sha_of(IMAGES[1]), "path": str(SAMPLE / IMAGES[1]),
                                             "kind": "image", "video_time_s": None}},
    ]
    return {"query": {"path": str(query), "mode": mode, "faces": [{"box": list(ASTRONAUT_FACE), "det_score": 0.99}]},
            "threshold": 0.55, "results": results[:top_k]}


def cli(*args: str, input_text: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m vidpipe ARGS`` with text on stdin (conftest's runner gives no stdin)."""
    return subprocess.run([sys.executable, "-m", "vidpipe", *args], input=input_text, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def cli_json(*args: str, input_text: str | None = None) -> dict:
    proc = cli(*args, input_text=input_text)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def login(at, name: str, password: str = PASSWORD):
    """Log in through the login form of an AppTest and return it after the rerun."""
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    return at.run()


def texts(at) -> str:
    """Everything an AppTest page shows as text (titles, markdown, captions, alerts)."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [caption for image in at.image for caption in image.captions]
    return "\n".join(parts)


def test_build_case_has_users_and_media(tmp_path):
    conn = build_case(tmp_path / "case")
    assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 4
    assert conn.execute("SELECT COUNT(*) FROM media").fetchone()[0] == 5
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
