"""One media item in detail: its row, hashes and signals, the status of each path, keyframes, faces."""

from __future__ import annotations

import sqlite3
from typing import Any

Box = tuple[float, float, float, float]


def find_media(conn: sqlite3.Connection, digest: str) -> sqlite3.Row | None:
    """The ``media`` row whose SHA-256, MD5 or SHA-1 is ``digest`` (lower-case hex), or None."""
    return conn.execute("SELECT * FROM media WHERE sha256=? OR md5=? OR sha1=?", (digest, digest, digest)).fetchone()


def media_hashes(conn: sqlite3.Connection, sha256: str) -> sqlite3.Row | None:
    """``md5``, ``sha1``, ``size``, ``mime`` and ``kind`` of a media item, or None."""
    return conn.execute("SELECT md5, sha1, size, mime, kind FROM media WHERE sha256=?", (sha256,)).fetchone()


def signals_of(conn: sqlite3.Connection, sha256: str) -> dict[str, tuple[str, float | None]]:
    """The perceptual hashes of a media item: signal name -> (value, quality or None)."""
    return {r["signal"]: (r["value"], r["quality"])
            for r in conn.execute("SELECT signal, value, quality FROM signals WHERE sha256=?", (sha256,))}


def path_statuses(conn: sqlite3.Connection, sha256: str) -> list[dict[str, Any]]:
    """Each path of the content with its final status and reason (view ``item_status``), first path first."""
    return [dict(r) for r in conn.execute(
        "SELECT s.locator, s.status, s.reason FROM item_status s JOIN items i ON i.item_id = s.item_id "
        "WHERE s.sha256=? ORDER BY i.locator_bytes", (sha256,))]


def keyframes(conn: sqlite3.Connection, sha256: str, limit: int = 12) -> list[sqlite3.Row]:
    """The first ``limit`` keyframes of a video (``time_s``, ``shot_id``, ``reason``), in time order."""
    return conn.execute("SELECT time_s, shot_id, reason FROM frames WHERE sha256=? ORDER BY time_s LIMIT ?",
                        (sha256, limit)).fetchall()


def faces_of_media(conn: sqlite3.Connection, sha256: str) -> list[dict[str, Any]]:
    """Every face of a media item (box, detection score, size, sharpness), in time then index order."""
    return [dict(r) for r in conn.execute(
        "SELECT face_id, face_index, video_time_s, x1, y1, x2, y2, det_score, size_px, sharpness FROM faces "
        "WHERE sha256=? ORDER BY video_time_s, face_index", (sha256,))]


def still_faces(conn: sqlite3.Connection, sha256: str) -> list[tuple[int, Box]]:
    """``(face_id, box)`` of each face of a still image (no video frame), in storage order."""
    return [(int(r["face_id"]), (r["x1"], r["y1"], r["x2"], r["y2"])) for r in
            conn.execute("SELECT face_id, x1, y1, x2, y2 FROM faces WHERE sha256=? AND frame_key=''", (sha256,))]


def face_box(conn: sqlite3.Connection, face_id: int) -> Box | None:
    """The box of face ``face_id`` in its picture's upright pixels, or None when there is no such face."""
    row = conn.execute("SELECT x1, y1, x2, y2 FROM faces WHERE face_id=?", (face_id,)).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3])
