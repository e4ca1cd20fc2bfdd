"""A self-contained HTML report of decisions: one file, no scripts, no external resources.

Every value is escaped; images (optional) are embedded as ``data:`` URIs; a Content-Security-
Policy forbids the page from loading or sending anything, so opening it makes no connection.
"""

from __future__ import annotations

from html import escape
from typing import Any

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_STYLE = """
body{font-family:sans-serif;margin:2em;color:#111}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #bbb;padding:4px 8px;text-align:left;vertical-align:top;font-size:13px}
th{background:#eee}.hash{font-family:monospace;font-size:12px;word-break:break-all}
.confirmed{color:#0a7d2c;font-weight:bold}.rejected{color:#b00020;font-weight:bold}
.unsure{color:#8a6d00;font-weight:bold}img{max-width:320px;border:1px solid #999}
section{page-break-inside:avoid;border-top:2px solid #333;padding-top:.5em}
"""


def _e(value: Any) -> str:
    return "—" if value is None else escape(str(value), quote=True)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def render_html(records: list[dict[str, Any]], meta: dict[str, Any],
                images: dict[int, tuple[str | None, str | None]]) -> str:
    """The report as one HTML string; ``images`` maps decision_id to (query, candidate) data URIs."""
    head = meta["audit_head"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">",
        "<title>vidpipe decisions report</title>", f"<style>{_STYLE}</style></head><body>",
        "<h1>Review decisions</h1>",
        "<table>",
        f"<tr><th>Case</th><td class='hash'>{_e(meta['case'])}</td></tr>",
        f"<tr><th>Exported</th><td>{_e(meta['exported_utc'])} by {_e(meta['exported_by'])}</td></tr>",
        f"<tr><th>Tool</th><td>vidpipe {_e(meta['tool_version'])}</td></tr>",
        f"<tr><th>Audit chain head</th><td class='hash'>seq {_e(head['seq'])}, {_e(head['hash'])}</td></tr>",
        f"<tr><th>Decisions</th><td>{len(records)}</td></tr>",
        "</table>",
    ]
    for r in records:
        parts.append(_decision_section(r, images.get(r["decision_id"], (None, None))))
    parts.append("</body></html>")
    return "\n".join(parts)


def _decision_section(r: dict[str, Any], imgs: tuple[str | None, str | None]) -> str:
    q, c = r["query"], r["candidate"]
    above = None if r["score"] is None or r["threshold"] is None else r["score"] >= r["threshold"]
    rows = [
        ("Decision", f"<span class='{_e(r['decision'])}'>{_e(r['decision'])}</span>"),
        ("Reason", _e(r["reason"])),
        ("Reviewer", _e(r["reviewer"])), ("Time (UTC)", _e(r["decided_utc"])),
        ("Mode", _e(r["mode"])),
        ("Score / threshold", f"{_num(r['score'])} / {_num(r['threshold'])}"
                              + ("" if above is None else (" (above)" if above else " (below)"))),
        ("Query SHA-256", f"<span class='hash'>{_e(q['sha256'])}</span>"),
        ("Query file", f"<span class='hash'>{_e(q['path'])}</span>"),
        ("Query face", _e(q["face"])),
        ("Candidate SHA-256", f"<span class='hash'>{_e(c['sha256'])}</span>"),
        ("Candidate MD5 / SHA-1", f"<span class='hash'>{_e(c['md5'])} / {_e(c['sha1'])}</span>"),
        ("Candidate size / type", f"{_e(c['size'])} bytes, {_e(c['mime'])}"),
        ("Candidate paths", "<br>".join(f"<span class='hash'>{_e(p)}</span>" for p in c["paths"]) or "—"),
        ("Face id / video time", f"{_e(c['face_id'])} / {_e(c['video_time_s'])}"),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    pics = ""
    if any(imgs):
        cells = "".join(f"<td><b>{label}</b><br>" + (f"<img alt='{label}' src='{_e(uri)}'>" if uri else "—")
                        + "</td>" for label, uri in (("Query", imgs[0]), ("Candidate", imgs[1])))
        pics = f"<table><tr>{cells}</tr></table>"
    return f"<section><h2>Decision {_e(r['decision_id'])}</h2><table>{body}</table>{pics}</section>"
