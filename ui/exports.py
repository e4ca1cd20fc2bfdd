"""Exports of reviewers' decisions: CSV, JSON, a self-contained HTML report, Project VIC-style JSON.

Every export names the audit chain head it was made at (so a copy kept elsewhere pins the chain
up to that point) and is itself logged with the SHA-256 of the bytes handed out.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

from ui.auth import User, can
from ui.report_html import render_html
from vidpipe import __version__
from vidpipe.reporting.export import csv_cell
from vidpipe.store import audit, decision_log
from vidpipe.store.casedb import utc_now
from vidpipe.store.queries.media import media_hashes
from vidpipe.store.queries.paths import paths_of

FORMATS = {"csv": "text/csv", "json": "application/json", "html": "text/html", "vics": "application/json"}
# Project VIC data model 2.0 (US) OData context, as Project VIC tools write it (cf. GLEAPP projectvic.py).
VICS_CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/US/$metadata#Cases"
WARNING = ("WARNING: THE AUDIT TRAIL OF THIS CASE DOES NOT HOLD. The audit chain or the binding of decisions "
           "to it is broken; the decisions below may have been altered. Do not rely on this export.")
CSV_COLUMNS = ["decision_id", "decided_utc", "reviewer", "decision", "reason", "mode", "score", "threshold",
               "query_sha256", "query_path", "query_face", "media_sha256", "media_md5", "media_sha1",
               "media_size", "media_mime", "media_paths", "face_id", "video_time_s",
               # the decision's audit entry: a copy of the CSV pins the chain up to its newest decision
               "audit_seq", "audit_entry_hash", "integrity"]


def query_file(case_root: Path, sha256: str) -> Path | None:
    """The stored query photo of a decision (``CASE/queries/<sha256>.<ext>``), if kept."""
    folder = case_root / "queries"
    matches = sorted(folder.glob(f"{sha256}.*")) if folder.is_dir() else []
    return matches[0] if matches else None


def decision_records(conn: sqlite3.Connection, case_root: Path) -> list[dict[str, Any]]:
    """Every decision with the hashes and paths of both sides, oldest first; read through
    `decision_log.read_decisions`, so each says whether it still equals its audit entry
    (``integrity``: "ok" or what differs)."""
    records = []
    media: dict[str, Any] = {}
    for d in decision_log.read_decisions(conn):
        sha = d["media_sha256"]
        if sha not in media:
            media[sha] = media_hashes(conn, sha) or {k: None for k in ("md5", "sha1", "size", "mime", "kind")}
        m = media[sha]
        paths = paths_of(conn, sha)
        qpath = query_file(case_root, d["query_sha256"])
        records.append({
            "decision_id": d["decision_id"], "decided_utc": d["decided_utc"], "reviewer": d["reviewer"],
            "decision": d["decision"], "reason": d["reason"], "mode": d["mode"],
            "score": d["score"], "threshold": d["threshold"],
            "query": {"sha256": d["query_sha256"], "path": str(qpath) if qpath else None,
                      "face": d["query_face"]},
            "candidate": {"sha256": sha, "md5": m["md5"], "sha1": m["sha1"], "size": m["size"],
                          "mime": m["mime"], "kind": m["kind"], "paths": paths, "face_id": d["face_id"],
                          "video_time_s": d["video_time_s"]},
            "extra": d["extra"], "audit_seq": d["audit_seq"], "audit_entry_hash": d["audit_entry_hash"],
            "integrity": d["integrity"],
        })
    return records


def to_csv(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        q, c = r["query"], r["candidate"]
        row = {**{k: r[k] for k in CSV_COLUMNS if k in r}, "query_sha256": q["sha256"],
               "query_path": q["path"], "query_face": q["face"], "media_sha256": c["sha256"],
               "media_md5": c["md5"], "media_sha1": c["sha1"], "media_size": c["size"],
               "media_mime": c["mime"], "media_paths": " | ".join(c["paths"]),
               "face_id": c["face_id"], "video_time_s": c["video_time_s"]}
        writer.writerow({k: csv_cell(v) for k, v in row.items()})  # reasons and paths are typed by people
    return buf.getvalue()


def to_json(records: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    return json.dumps({"format": "vidpipe-decisions", "version": 1, **meta, "decisions": records},
                      indent=2, ensure_ascii=True)


def to_vics(records: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """One Project VIC ``Media`` entry per decided item; decisions go into ``Comments``/``Tags``.

    No VIC ``Category`` is set: an identity match is not a content category, and we never invent one.
    """
    by_media: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_media.setdefault(r["candidate"]["sha256"], []).append(r)
    media = []
    for media_id, (sha, decided) in enumerate(sorted(by_media.items()), start=1):
        c = decided[0]["candidate"]
        comments = [f"{r['decided_utc']} {r['reviewer']}: {r['decision']} ({r['mode']} match, score "
                    f"{_num(r['score'])}, threshold {_num(r['threshold'])}, query sha256 {r['query']['sha256']})"
                    f" - {r['reason']}" for r in decided]
        media.append({
            "MediaID": media_id, "MD5": (c["md5"] or "").upper() or None, "SHA1": (c["sha1"] or "").upper() or None,
            "SHA256": sha, "MediaSize": c["size"], "MimeType": c["mime"], "Category": None,
            "IsPrecategorized": False, "Comments": "\n".join(comments),
            "Tags": sorted({f"vidpipe:{r['decision']}" for r in decided}),
            "MediaFiles": [{"FileName": Path(p).name, "FilePath": str(Path(p).parent)} for p in c["paths"]],
        })
    doc = {"@odata.context": VICS_CONTEXT, "value": [{
        "CaseID": meta["case"], "CaseNumber": Path(meta["case"]).name, "Contact": meta["exported_by"],
        "SourceApplicationName": "vidpipe", "SourceApplicationVersion": __version__,
        "ExportedUtc": meta["exported_utc"], "AuditHead": meta["audit_head"],
        **({"IntegrityWarning": meta["integrity_warning"]} if meta.get("integrity_warning") else {}),
        "Media": media}]}
    return json.dumps(doc, indent=2, ensure_ascii=True)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def build_export(conn: sqlite3.Connection, case_root: Path, fmt: str, user: User,
                 images: dict[int, tuple[bytes | None, bytes | None]] | None = None, *,
                 allow_broken: bool = False) -> tuple[bytes | None, str, str | None]:
    """Make one export and log it; returns ``(data, file name, None)`` or ``(None, "", why not)``.

    ``images`` (HTML only) maps decision_id to (query JPEG, candidate JPEG) to embed. When the
    audit chain or a decision's binding to it does not hold, the export is refused, or with
    ``allow_broken`` made with the problems written into it (``integrity_warning``).
    """
    if not can(user.role, "export"):
        return None, "", f"role {user.role} may not export"
    if fmt not in FORMATS:
        return None, "", f"format must be one of {', '.join(FORMATS)}"
    check = decision_log.integrity(conn)
    if not check["ok"] and not allow_broken:
        audit.append(conn, user.name, "export_refused", fmt, {"problems": len(check["summary"])})
        return None, "", (f"export refused: the audit trail does not hold ({len(check['summary'])} problem(s); "
                          f"first: {check['summary'][0]}). Run `vidpipe verify`; an export can still be made "
                          "with the problems written into it.")
    records = decision_records(conn, case_root)
    head_seq, head_hash = audit.head(conn)
    meta = {"case": str(case_root), "exported_utc": utc_now(), "exported_by": user.name,
            "tool_version": __version__, "audit_head": {"seq": head_seq, "hash": head_hash}}
    if not check["ok"]:
        meta["integrity_warning"] = {"message": WARNING, "problems": check["summary"]}
        for r in records:  # a CSV has no header block: every row says it
            r["integrity"] = (f"AUDIT TRAIL DOES NOT HOLD ({len(check['summary'])} problem(s), first: "
                              f"{check['summary'][0]}); this decision: {r['integrity']}")
    if fmt == "csv":
        text = to_csv(records)
    elif fmt == "json":
        text = to_json(records, meta)
    elif fmt == "vics":
        text = to_vics(records, meta)
    else:
        encoded = {k: tuple(_data_uri(b) for b in v) for k, v in (images or {}).items()}
        text = render_html(records, meta, encoded)
        if meta.get("integrity_warning"):
            banner = "<div style='border:4px solid #b00;padding:1em;font-weight:bold'>" + html.escape(
                WARNING) + "<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in check["summary"]) + "</ul></div>"
            text = text.replace("<body>", "<body>" + banner, 1)
    data = text.encode("utf-8")
    name = f"decisions-{meta['exported_utc'][:19].replace(':', '')}.{'json' if fmt == 'vics' else fmt}"
    if fmt == "vics":
        name = name.replace("decisions-", "decisions-vics-")
    audit.append(conn, user.name, "export", fmt, {"decisions": len(records), "file": name,
                                                  "sha256": hashlib.sha256(data).hexdigest(),
                                                  "audit_head_seq": head_seq, "images": bool(images),
                                                  **({"integrity_warning": len(check["summary"])}
                                                     if not check["ok"] else {})})
    return data, name, None


def _data_uri(jpeg: bytes | None) -> str | None:
    return None if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
