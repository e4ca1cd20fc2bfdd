"""Export of a case: one record per source content (JSONL per the contract, or CSV).

Records are ordered by SHA-256 and carry no run ids or timings, so two cases built from the same
evidence export byte-identically however their runs were interrupted and resumed.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any, TextIO

from vidpipe.errors import VidpipeError
from vidpipe.sources.base import ItemRef
from vidpipe.store.audit import head
from vidpipe.store.decision_log import integrity

HASH_FIELDS = ("phash", "dhash", "pdq")


def _paths(rows: list[sqlite3.Row]) -> tuple[list[str], list[str] | None]:
    rows = _by_identity(rows)
    paths = [row["locator"] for row in rows]
    raw = [bytes(row["locator_bytes"]) for row in rows]
    odd = [base64.b64encode(b).decode() for b in raw if _not_utf8(b)]
    return paths, (odd or None)


def _by_identity(rows: list[sqlite3.Row]) -> list[sqlite3.Row]:
    return sorted(rows, key=lambda row: bytes(row["locator_bytes"]))


def _not_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def iter_records(conn: sqlite3.Connection, raw_paths: bool = False) -> Iterator[dict[str, Any]]:
    """Every content record, then every path that never yielded content (links, FIFOs, failures).

    ``raw_paths`` adds ``_raw_paths``: the stored identity bytes of each path, in ``paths`` order.
    """
    items_by_sha: dict[str, list[sqlite3.Row]] = {}
    for row in conn.execute("SELECT sha256, locator, locator_bytes, ext_mismatch FROM items WHERE sha256 IS NOT NULL"):
        items_by_sha.setdefault(row["sha256"], []).append(row)
    signals: dict[str, dict[str, Any]] = {}
    for row in conn.execute("SELECT sha256, signal, value, quality FROM signals"):
        entry = signals.setdefault(row["sha256"], {})
        entry[row["signal"]] = row["value"]
        if row["signal"] == "pdq":
            entry["pdq_quality"] = row["quality"]
    faces = _faces_by_sha(conn)
    hashlist_hits = _hashlist_hits_by_sha(conn)
    for m in conn.execute("SELECT * FROM media ORDER BY sha256"):
        rows = items_by_sha.get(m["sha256"], [])
        paths, paths_b64 = _paths(rows)
        detail = json.loads(m["detail"]) if m["detail"] else {}
        hashes = {k: signals.get(m["sha256"], {}).get(k) for k in (*HASH_FIELDS, "pdq_quality")}
        record: dict[str, Any] = {
            "sha256": m["sha256"], "md5": m["md5"], "sha1": m["sha1"], "paths": paths, "size": m["size"],
            "mime": m["mime"], "kind": m["kind"], "status": m["status"], "reason": m["reason"],
            "exif": json.loads(m["exif"]) if m["exif"] else None,
            "hashes": hashes if any(v is not None for v in hashes.values()) else None,
            "faces": faces.get(m["sha256"], []),
            "video": detail.get("video"),
            "width": m["width"], "height": m["height"],
            "extension_mismatch": any(r["ext_mismatch"] for r in rows),
            "warnings": detail.get("warnings") or [],
            "hashlist_hits": hashlist_hits.get(m["sha256"], []),
        }
        if paths_b64:
            record["paths_b64"] = paths_b64
        if raw_paths:
            record["_raw_paths"] = [bytes(row["locator_bytes"]) for row in _by_identity(rows)]
        yield record
    for row in conn.execute("SELECT locator, locator_bytes, status, reason, fs_kind, detail FROM items "
                            "WHERE sha256 IS NULL ORDER BY locator_bytes"):
        paths, paths_b64 = _paths([row])
        record = {"sha256": None, "md5": None, "sha1": None, "paths": paths, "size": None, "mime": None,
                  "kind": row["fs_kind"], "status": row["status"], "reason": row["reason"], "exif": None,
                  "hashes": None, "faces": [], "video": None, "hashlist_hits": []}
        if paths_b64:
            record["paths_b64"] = paths_b64
        if raw_paths:
            record["_raw_paths"] = [bytes(row["locator_bytes"])]
        yield record


def _faces_by_sha(conn: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='faces'").fetchone()
    if not exists:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute("SELECT sha256, x1, y1, x2, y2, det_score, video_time_s FROM faces "
                            "ORDER BY sha256, video_time_s, x1, y1"):
        out.setdefault(row["sha256"], []).append({
            "box": [round(row["x1"], 1), round(row["y1"], 1), round(row["x2"], 1), round(row["y2"], 1)],
            "det_score": round(row["det_score"], 4), "video_time_s": row["video_time_s"]})
    return out


def _hashlist_hits_by_sha(conn: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
    """Unsuppressed hits on positive known-hash lists, per media item (a case made before hash lists: {})."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='hashlist_hits'").fetchone()
    if not exists:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    label_maps: dict[str, dict[str, str]] = {}
    for row in conn.execute("SELECT h.sha256, l.name, h.category, h.match, h.distance, l.categories "
                            "FROM hashlist_hits h JOIN hashlists l ON l.list_id = h.list_id "
                            "WHERE h.suppressed = 0 AND l.negative = 0"):
        key = row["categories"] or "{}"
        if key not in label_maps:
            label_maps[key] = json.loads(key)
        labels = label_maps[key]
        hit = {"list": row["name"], "category": row["category"], "match": row["match"],
               "distance": row["distance"], "category_label": labels.get(row["category"])}
        hits = out.setdefault(row["sha256"], [])
        if hit not in hits:   # one list name imported from several files can hit twice
            hits.append(hit)
    for hits in out.values():
        hits.sort(key=lambda h: (h["list"], h["match"], h["distance"], h["category"] or ""))
    return out


def write_jsonl(conn: sqlite3.Connection, out: TextIO) -> int:
    n = 0
    for record in iter_records(conn):
        out.write(json.dumps(record, sort_keys=False, ensure_ascii=True) + "\n")
        n += 1
    return n


CSV_COLUMNS = ["sha256", "md5", "sha1", "paths", "size", "mime", "kind", "status", "reason", "make", "model",
               "serial", "datetime_original", "offset_time", "gps_lat", "gps_lon", "gps_alt", "phash", "dhash",
               "pdq", "pdq_quality", "faces", "extension_mismatch", "hashlist_hits", "path_b64"]
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection");
# the full-width forms are read as formulas by some spreadsheets too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# Bidirectional controls (Trojan Source, CVE-2021-42574), zero-width and line/paragraph separators:
# they reorder or hide what a reviewer reads. C0/C1 controls and DEL are added in `_escape_char`.
INVISIBLE = frozenset("\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e"
                      "\u2066\u2067\u2068\u2069\ufeff")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"\\x{code:02x}"
    if ch in INVISIBLE:
        return f"\\u{code:04x}"
    return ch


def csv_cell(value: Any) -> Any:
    """A value made safe for a spreadsheet cell: numbers as they are; text with control, bidi and
    invisible characters written as visible ``\\xNN`` / ``\\uNNNN`` escapes, and a leading ``'`` when
    it would start a formula. Exact bytes of paths are in the ``path_b64`` column, not here."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = "".join(_escape_char(ch) for ch in str(value))
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _path_b64(blobs: list[bytes]) -> str:
    """Base64 of each path's raw bytes (file path, then ``!member`` names as stored), ' | '-joined like
    ``paths``: the way back to a name that is not UTF-8 or that the escaping above changed."""
    return " | ".join(base64.b64encode(ItemRef.from_blob(b).display_bytes).decode("ascii") for b in blobs)


def write_csv(conn: sqlite3.Connection, out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    n = 0
    for r in iter_records(conn, raw_paths=True):
        exif = r.get("exif") or {}
        gps = exif.get("gps") or {}
        hashes = r.get("hashes") or {}
        row = {**{k: r.get(k) for k in CSV_COLUMNS}, "paths": " | ".join(r["paths"]),
               "make": exif.get("make"), "model": exif.get("model"), "serial": exif.get("serial"),
               "datetime_original": exif.get("datetime_original"), "offset_time": exif.get("offset_time"),
               "gps_lat": gps.get("lat"), "gps_lon": gps.get("lon"), "gps_alt": gps.get("alt"),
               **{k: hashes.get(k) for k in (*HASH_FIELDS, "pdq_quality")},
               "faces": len(r.get("faces") or []), "hashlist_hits": len(r.get("hashlist_hits") or []),
               "path_b64": _path_b64(r["_raw_paths"])}
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
        n += 1
    return n


def default_export_name(fmt: str) -> str:
    return os.path.join(os.getcwd(), f"export.{fmt}")


def write_vics(conn: sqlite3.Connection, out: TextIO, case_name: str, *,
               warning: dict[str, Any] | None = None) -> int:
    """Project VIC (VICS data model 1.3 style) JSON: one Media entry per unique content.

    ``AuditHead`` names the audit chain head (an unsigned anchor for ``vidpipe verify --expect-head``);
    ``warning`` (from `audit_gate`) is written in as ``IntegrityWarning``.

    vidpipe does not categorise material, so ``Category`` is null; a receiving tool or a reviewer
    assigns it. Paths are given relative to their evidence source where possible.
    """
    media = []
    for n, r in enumerate(iter_records(conn), 1):
        if r["sha256"] is None:
            continue
        path = r["paths"][0] if r["paths"] else ""
        exif = r.get("exif") or {}
        gps = exif.get("gps") or {}
        entry = {
            "MediaID": n, "Category": None, "MD5": r["md5"].upper(), "SHA1": r["sha1"].upper(),
            "SHA256": r["sha256"], "MediaSize": r["size"], "FileName": os.path.basename(path.split("!")[-1]),
            "FilePath": path, "MimeType": r["mime"], "IsDistributed": None, "Series": None,
            "DateUpdated": None,
        }
        if r.get("hashes") and r["hashes"].get("pdq"):
            entry["PDQ"] = r["hashes"]["pdq"]
        if exif.get("make") or exif.get("model") or gps:
            entry["Exifs"] = [{"Make": exif.get("make"), "Model": exif.get("model"),
                               "SerialNumber": exif.get("serial"), "DateTimeOriginal": exif.get("datetime_original"),
                               "Latitude": gps.get("lat"), "Longitude": gps.get("lon")}]
        media.append(entry)
    doc = {"odata.metadata": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/1.3.xml#Cases",
           "value": [{"CaseID": case_name, "SourceApplicationName": "vidpipe", "AuditHead": audit_head(conn),
                      **({"IntegrityWarning": warning} if warning else {}), "Media": media}]}
    json.dump(doc, out, indent=1)
    out.write("\n")
    return len(media)


# -- the audit trail in exports: its head (an anchor) and a refusal or warning when it does not hold --

INTEGRITY_WARNING = ("WARNING: THE AUDIT TRAIL OF THIS CASE DOES NOT HOLD (the audit chain or the binding of "
                     "reviewers' decisions to it is broken); run `vidpipe verify --case DIR`")


def audit_head(conn: sqlite3.Connection) -> dict[str, Any]:
    """``{"seq", "hash"}`` of the audit chain's last entry (seq 0 and the genesis hash when empty)."""
    seq, digest = head(conn)
    return {"seq": seq, "hash": digest}


def audit_gate(conn: sqlite3.Connection, allow_broken: bool) -> dict[str, Any] | None:
    """None when the audit chain and every decision's binding hold. Otherwise raise (the export is
    refused), or with ``allow_broken`` return the warning to write into the export."""
    check = integrity(conn)
    if check["ok"]:
        return None
    if not allow_broken:
        raise VidpipeError(f"export refused: the audit trail does not hold ({len(check['summary'])} problem(s); "
                           f"first: {check['summary'][0]}); see `vidpipe verify`, or export with "
                           "--allow-broken-audit to write the problems into the export")
    return {"message": INTEGRITY_WARNING, "problems": check["summary"]}


def write_audit_trailer(fmt: str, out: TextIO, conn: sqlite3.Connection,
                        warning: dict[str, Any] | None) -> None:
    """After the records of a JSONL or CSV export: one more line naming the audit head (JSONL) and
    the warning, if any. Only on request (``--audit-head``) or with a warning: the contract's
    JSONL is one line per source file."""
    if fmt == "jsonl":
        out.write(json.dumps({"audit_head": audit_head(conn), **({"integrity_warning": warning} if warning else {})},
                             ensure_ascii=True) + "\n")
    elif fmt == "csv":
        head = audit_head(conn)
        row = [f"# audit_head seq={head['seq']} hash={head['hash']}"]
        if warning:
            row += [warning["message"], *warning["problems"][:100]]
        csv.writer(out).writerow(row)
