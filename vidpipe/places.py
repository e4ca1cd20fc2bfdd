"""Reference places: label reference photos (a hotel's own room photos) with the place they show.

TraffickCam's workflow: a gallery of room photos per hotel is ingested like evidence, and a scene
match against one of them names the hotel. The labels come from a CSV given to `vidpipe ingest
--places FILE`:

    path,place,chain,city,room
    marriott_downtown/room_412_a.jpg,Marriott Downtown,Marriott,Springfield,412
    ...

``place`` is required; each row names its photo by ``path`` (relative to an ingested source
folder, or absolute; an archive member as ``bundle.zip!inner/x.jpg``) or by ``sha256``; every
other column is kept as detail. Labels attach to content (SHA-256), so a copy of the photo under
another name carries them too. Re-importing the same file changes nothing; rows that name no
ingested photo are reported, never guessed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import sqlite3
from pathlib import Path

from vidpipe.errors import UsageError

MAX_LABEL_FILE_BYTES = 64 * 1024 * 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def read_label_file(path: Path) -> tuple[list[dict[str, str]], str]:
    """(rows with lower-case column names, SHA-256 of the file); UsageError for a malformed file."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"places file not found: {path}")
    data = p.read_bytes()
    if len(data) > MAX_LABEL_FILE_BYTES:
        raise UsageError(f"places file is larger than {MAX_LABEL_FILE_BYTES} bytes: {path}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"places file is not UTF-8: {path} ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in (reader.fieldnames or [])]
    if "place" not in columns or not ({"path", "sha256"} & set(columns)):
        raise UsageError(f"places file needs a 'place' column and a 'path' or 'sha256' column; found {columns}")
    rows = []
    for raw in reader:
        row = {str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
        rows.append(row)
    return rows, hashlib.sha256(data).hexdigest()


def _sha_for_path(conn: sqlite3.Connection, name: str, roots: list[str]) -> str | None:
    candidates = [name] if os.path.isabs(name) else [os.path.join(root, name) for root in roots]
    for locator in candidates:
        row = conn.execute("SELECT sha256 FROM items WHERE locator = ? AND sha256 IS NOT NULL",
                           (os.path.normpath(locator) if "!" not in locator else locator,)).fetchone()
        if row is not None:
            return row[0]
    return None


def apply_place_labels(conn: sqlite3.Connection, run_id: str, label_file: Path, roots: list[str]) -> dict:
    """Attach the file's place labels to the case's content; return {"labelled", "rows", "unmatched"}.

    The caller owns the transaction (the ingest writer commits it with the run).
    """
    rows, digest = read_label_file(label_file)
    label_path = os.path.abspath(label_file)
    labelled, unmatched = set(), []
    for n, row in enumerate(rows, 2):  # line numbers as a spreadsheet shows them (header = 1)
        place = row.get("place", "")
        sha = row.get("sha256", "").lower()
        if not place:
            unmatched.append({"line": n, "reason": "empty place"})
            continue
        if sha and not _HEX64.match(sha):
            unmatched.append({"line": n, "reason": "malformed sha256"})
            continue
        if not sha and row.get("path"):
            sha = _sha_for_path(conn, row["path"], roots) or ""
        if not sha or conn.execute("SELECT 1 FROM media WHERE sha256=?", (sha,)).fetchone() is None:
            unmatched.append({"line": n, "reason": "no ingested photo", "path": row.get("path"),
                              "sha256": row.get("sha256") or None})
            continue
        detail = {k: v for k, v in row.items() if k not in ("place", "path", "sha256") and v}
        if row.get("path"):
            detail["label_path"] = row["path"]
        conn.execute("INSERT INTO places(sha256, place, detail, label_file, label_sha256, run_id) VALUES (?,?,?,?,?,?) "
                     "ON CONFLICT(sha256, place) DO UPDATE SET detail=excluded.detail, label_file=excluded.label_file, "
                     "label_sha256=excluded.label_sha256",
                     (sha, place, json.dumps(detail, sort_keys=True), label_path, digest, run_id))
        labelled.add((sha, place))
    return {"file": label_path, "sha256": digest, "rows": len(rows), "labelled": len(labelled),
            "unmatched": unmatched}
