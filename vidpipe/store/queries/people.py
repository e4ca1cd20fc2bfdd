"""Face clusters as the People page shows them: the latest clustering, persons by size, their faces."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from vidpipe.store.queries.paths import first_path_sql


def latest_clustering(conn: sqlite3.Connection) -> sqlite3.Row | None:
    """The newest ``clusterings`` row (threshold, its source, counts), or None before the first."""
    return conn.execute("SELECT * FROM clusterings ORDER BY clustering_id DESC LIMIT 1").fetchone()


def person_sizes(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every person of the current clustering with ``faces`` and ``files`` (distinct contents),
    largest first, ties by ``person_id``."""
    return conn.execute(
        "SELECT fp.person_id, COUNT(*) AS faces, COUNT(DISTINCT f.sha256) AS files FROM face_person fp "
        "JOIN faces f ON f.face_id = fp.face_id GROUP BY fp.person_id ORDER BY faces DESC, fp.person_id").fetchall()


def faces_by_id(conn: sqlite3.Connection, face_ids: Sequence[int]) -> dict[int, sqlite3.Row]:
    """``face_id`` -> row (``sha256``, ``video_time_s``, box) for the given faces that exist."""
    if not face_ids:
        return {}
    marks = ",".join("?" * len(face_ids))
    return {r["face_id"]: r for r in conn.execute(
        f"SELECT face_id, sha256, video_time_s, x1, y1, x2, y2 FROM faces WHERE face_id IN ({marks})",
        list(face_ids))}


def person_members(conn: sqlite3.Connection, person_id: int) -> list[sqlite3.Row]:
    """The faces of one person in ``face_id`` order, each with its box, detection score and the
    first path of its content (``path``)."""
    return conn.execute(
        "SELECT f.face_id, f.sha256, f.video_time_s, f.det_score, f.x1, f.y1, f.x2, f.y2, "
        f"{first_path_sql('f.sha256')} AS path FROM face_person fp "
        "JOIN faces f ON f.face_id = fp.face_id WHERE fp.person_id = ? ORDER BY f.face_id", (person_id,)).fetchall()
