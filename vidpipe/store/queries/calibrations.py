"""The thresholds measured for a case (table ``calibrations``), as the Calibration page lists them."""

from __future__ import annotations

import sqlite3
from typing import Any


def all_calibrations(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every calibration as a dict of its columns, the ones in use first, then newest first."""
    return [dict(r) for r in conn.execute("SELECT * FROM calibrations ORDER BY active DESC, calibration_id DESC")]
