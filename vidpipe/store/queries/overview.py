"""The case at a glance, grouped in SQL so a case of millions of items stays a few rows:
capture hours, cameras and serials, GPS places, and counts."""

from __future__ import annotations

import sqlite3
from typing import Any


def capture_hours(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Items with EXIF per capture hour: rows of ``hour`` (``YYYY-MM-DDTHH:00:00`` as the camera
    wrote it, or junk when the EXIF date is unusable; callers check) and ``n``."""
    return conn.execute("SELECT substr(json_extract(exif, '$.datetime_original'), 1, 13) || ':00:00' AS hour, "
                        "COUNT(*) AS n FROM media WHERE json_valid(exif) GROUP BY hour").fetchall()


def camera_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Items with EXIF per (make, model, serial), each '' when absent: dicts with ``items``."""
    return [dict(r) for r in conn.execute(
        "SELECT coalesce(json_extract(exif, '$.make'), '') AS make, coalesce(json_extract(exif, '$.model'), '') "
        "AS model, coalesce(json_extract(exif, '$.serial'), '') AS serial, COUNT(*) AS items FROM media "
        "WHERE json_valid(exif) GROUP BY 1, 2, 3")]


def gps_places(conn: sqlite3.Connection, limit: int) -> list[sqlite3.Row]:
    """GPS positions rounded to 1e-4 degree (about 11 m) with their item counts (``lat``, ``lon``,
    ``n``), the ``limit`` places with the most items first."""
    return conn.execute(
        "SELECT round(json_extract(exif, '$.gps.lat'), 4) AS lat, round(json_extract(exif, '$.gps.lon'), 4) AS lon, "
        "COUNT(*) AS n FROM media WHERE json_valid(exif) AND json_extract(exif, '$.gps.lat') IS NOT NULL "
        "GROUP BY 1, 2 ORDER BY n DESC LIMIT ?", (limit,)).fetchall()


def face_count(conn: sqlite3.Connection) -> int:
    """How many faces the case holds (every picture, every video frame)."""
    return int(conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0])


def decision_count(conn: sqlite3.Connection) -> int:
    """How many review decisions the case holds."""
    return int(conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])
