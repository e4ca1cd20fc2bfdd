"""A video's keyframes replaced by a new result (a ``partial: timeout`` video retried with a larger
budget, issue 11 items 6-7) take its faces and scenes at frame times that no longer exist with
them, in the writer's one transaction; faces at surviving times and reviewer-used faces stay."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vidpipe.pipeline.tasks import ContentResult
from vidpipe.store.casedb import open_case
from vidpipe.store.video_rows import KeyframeRow, VpdqRow
from vidpipe.store.writer import CaseWriter

SHA = "ab" * 32
ENV = {"operator": "test", "argv": [], "tool_version": "0", "git_commit": None, "libraries": {}, "host": "h"}


@pytest.fixture
def writer(tmp_path: Path) -> CaseWriter:
    _, conn = open_case(tmp_path / "case", create=True)
    w = CaseWriter(conn)
    w.begin_run("ingest", ENV, {}, "cfg")
    w.begin()
    conn.execute("INSERT INTO media(sha256, md5, sha1, size, mime, label, kind, state, first_run) "
                 "VALUES (?, 'm', 's', 1, 'video/mp4', 'MP4', 'video', 'pending', ?)", (SHA, w.run_id))
    w.commit()
    return w


def _video_result(times: list[float], status: str = "ok", reason: str | None = None) -> ContentResult:
    rows = [KeyframeRow(t, int(t * 30), i, "interval", "0" * 64, 100, "0" * 16) for i, t in enumerate(times)]
    return ContentResult(SHA, status, reason, "video", width=64, height=64,
                         keyframes=rows, vpdq=[VpdqRow(0, 100, "0" * 64, 0.0)])


def _face_output(t: float, faces: int = 1, error: str | None = None) -> SimpleNamespace:
    face = SimpleNamespace(box=(1, 2, 30, 40), det_score=0.9, landmarks=None, size_px=30.0, sharpness=1.0)
    vec = np.ones(4, dtype=np.float32) / 2
    return SimpleNamespace(sha256=SHA, video_time_s=t, faces=[face] * faces, embeddings=[vec] * faces, error=error,
                           scene=vec, scene_masked=[], scene_error=None)


def _first_pass(w: CaseWriter) -> None:
    """A partial: timeout result with keyframes at 0, 2, 4 s, faces at 2 and 4, scenes at all, stages done."""
    det = w.register_model("detector", {"model": "det", "weights_sha256": "d" * 64})
    emb = w.register_model("embedder", {"model": "emb", "weights_sha256": "e" * 64})
    scene = w.register_model("scene", {"model": "scene", "weights_sha256": "f" * 64})
    w.apply_content(_video_result([0.0, 2.0, 4.0], "partial", "timeout"))
    for t in (0.0, 2.0, 4.0):
        w.apply_faces(_face_output(t, faces=0 if t == 0.0 else 1), det, emb)
        w.apply_scene(_face_output(t), scene, "scenes-1")
    w.apply_faces(_face_output(4.0, error="face_decode:x"), det, emb)  # a failed frame stage row
    w.mark_stage(SHA, "faces", "faces-1")
    w.mark_stage(SHA, "scenes", "scenes-1")
    w.commit()


def _keys(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[0] for r in conn.execute(f"SELECT frame_key FROM {table} WHERE sha256=? ORDER BY frame_key", (SHA,))]


def _stages(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT stage FROM stages WHERE sha256=? AND stage != 'video' ORDER BY stage",
                                       (SHA,))]


def test_retry_with_other_keyframes_drops_faces_and_scenes_at_gone_times(writer: CaseWriter) -> None:
    _first_pass(writer)
    conn = writer.conn
    assert _keys(conn, "faces") == ["2.000", "4.000"] and _keys(conn, "scenes") == ["0.000", "2.000", "4.000"]
    assert _stages(conn) == ["faces", "faces@4.000", "scenes"]

    writer.apply_content(_video_result([0.0, 3.0, 6.0]))  # the retry: whole video, other interval
    writer.commit()
    assert [r[0] for r in conn.execute("SELECT time_s FROM frames WHERE sha256=? ORDER BY time_s", (SHA,))] == \
        [0.0, 3.0, 6.0]
    assert _keys(conn, "faces") == []                 # 2.000 and 4.000 are no longer frames
    assert _keys(conn, "scenes") == ["0.000"]         # the surviving frame keeps its scene until rescanned
    # The frame-level failure went with its frame; the video-level marks are cleared so the new
    # frames get scanned (by this run's face stage, or by the next run when faces were off).
    assert _stages(conn) == []
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_replacement_is_one_transaction(writer: CaseWriter) -> None:
    _first_pass(writer)
    writer.apply_content(_video_result([0.0, 3.0, 6.0]))
    writer.rollback()  # killed before the batch committed: the old frames, faces and scenes are all still there
    conn = writer.conn
    assert [r[0] for r in conn.execute("SELECT time_s FROM frames WHERE sha256=?", (SHA,))] == [0.0, 2.0, 4.0]
    assert _keys(conn, "faces") == ["2.000", "4.000"] and _stages(conn) == ["faces", "faces@4.000", "scenes"]


def test_same_keyframes_keep_faces_and_marks(writer: CaseWriter) -> None:
    # The video stage redone only to feed the face stage gives the same frames: nothing is dropped.
    _first_pass(writer)
    writer.apply_content(_video_result([0.0, 2.0, 4.0], "partial", "timeout"))
    writer.commit()
    assert _keys(writer.conn, "faces") == ["2.000", "4.000"]
    assert _stages(writer.conn) == ["faces", "faces@4.000", "scenes"]


def test_faces_a_reviewer_used_are_kept_and_clusters_do_not_block(writer: CaseWriter) -> None:
    _first_pass(writer)
    conn = writer.conn
    (f2,), (f4,) = conn.execute("SELECT face_id FROM faces WHERE sha256=? ORDER BY frame_key", (SHA,)).fetchall()
    writer.begin()
    cid = conn.execute("INSERT INTO clusterings(created_utc, threshold, threshold_source, faces, persons) "
                       "VALUES ('t', 0.5, 'test', 2, 1)").lastrowid
    conn.executemany("INSERT INTO face_person(face_id, person_id, clustering_id) VALUES (?,?,?)",
                     [(f2, f2, cid), (f4, f2, cid)])
    conn.execute("INSERT INTO decisions(query_sha256, mode, media_sha256, face_id, decision, reviewer, decided_utc) "
                 "VALUES ('q', 'face', ?, ?, 'confirmed', 'rev', 't')", (SHA, f4))
    writer.commit()

    writer.apply_content(_video_result([0.0, 3.0, 6.0]))
    writer.commit()
    assert [r[0] for r in conn.execute("SELECT face_id FROM faces WHERE sha256=?", (SHA,))] == [f4]
    assert [r[0] for r in conn.execute("SELECT face_id FROM face_person")] == [f4]
    assert json.loads(conn.execute("SELECT detail FROM media WHERE sha256=?", (SHA,)).fetchone()[0])[
        "faces_kept_for_review"] == 1
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_ingest_retry_of_a_partial_timeout_video_drops_stale_frame_rows(tmp_path: Path) -> None:
    """End to end: a video cut short by its budget, then retried by the next run (whole video)."""
    import av

    from vidpipe.pipeline.runner import IngestConfig, run_ingest

    evidence = tmp_path / "evidence"
    evidence.mkdir()
    with av.open(str(evidence / "clip.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        yy, xx = np.mgrid[0:180, 0:320]
        for i in range(300):
            cell = (8, 24, 48)[i // 100]  # two hard cuts
            img = (((xx // cell + yy // cell) % 2) * 200 + 20).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.roll(np.dstack([img] * 3), 3 * i, axis=1),
                                                                   format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    case = tmp_path / "case"

    def ingest(**kw) -> dict:
        return run_ingest(case, IngestConfig(sources=[str(evidence)], workers=1, faces=False, scenes=False, **kw),
                          progress=False)

    first = ingest(video_budget_scale=1e-9, retry_failed=False)  # stops after the first frame
    assert first["partial_reasons"] == {"timeout": 1}
    conn = sqlite3.connect(case / "case.sqlite")
    sha, run_id = conn.execute("SELECT sha256, done_run FROM media").fetchone()
    # Rows an earlier face/scene stage left: one at a frame time the retry will not have.
    with conn:
        conn.execute("INSERT INTO models(model_key, name, role, info, first_run) VALUES ('sc@0', 'sc', 'scene', '{}', ?)",
                     (run_id,))
        conn.execute("INSERT INTO scenes(sha256, frame_key, video_time_s, embedder, embedding, masked, run_id) "
                     "VALUES (?, '0.123', 0.123, 'sc@0', x'00', '[]', ?)", (sha, run_id))
        conn.execute("INSERT INTO stages(sha256, stage, stage_version, status, run_id, done_utc) "
                     "VALUES (?, 'scenes', 'v', 'ok', ?, 't')", (sha, run_id))
    conn.close()

    second = ingest()  # --retry-failed (default): the whole video this time
    assert second["retried"] == 1 and second["partial"] == 0, second
    conn = sqlite3.connect(case / "case.sqlite")
    assert conn.execute("SELECT status FROM media").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0] >= 3
    assert conn.execute("SELECT COUNT(*) FROM scenes").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM stages WHERE stage='scenes'").fetchone()[0] == 0
