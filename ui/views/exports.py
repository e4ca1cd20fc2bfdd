"""Exports of the decisions: CSV, JSON, a self-contained HTML report, Project VIC-style JSON."""

from __future__ import annotations

import streamlit as st

from ui import session
from ui.exports import FORMATS, build_export, decision_records, query_file
from ui.thumbs import ensure_thumbs, request_for_file, request_for_media
from ui.view import esc, render
from vidpipe.filetype import SNIFF_BYTES, sniff
from vidpipe.store import decision_log
from vidpipe.store.queries.media import face_box

NAMES = {"csv": "CSV", "json": "JSON", "html": "HTML report (self-contained)", "vics": "Project VIC-style JSON"}

user = session.require("export")
conn = session.conn()
paths = session.case_paths()
st.title("Exports")
records = decision_records(conn, paths.root)
st.write(f"{len(records)} decision(s) in this case. Every export is recorded in the audit trail.")
integrity = decision_log.integrity(conn)
allow_broken = False
if not integrity["ok"]:
    st.error("The audit trail of this case does not hold; exports are refused:\n\n"
             + "\n".join(f"- {esc(p)}" for p in integrity["summary"][:20]))
    allow_broken = st.checkbox("Export anyway, with these problems written into the export", value=False)

fmt = st.radio("Format", list(FORMATS), format_func=NAMES.get, horizontal=True)
with_images = fmt == "html" and st.checkbox(
    "Embed the query and candidate images (unblurred) in the report", value=False)


def _images() -> dict[int, tuple[bytes | None, bytes | None]]:
    """Unblurred thumbnails of both sides of every decision, for the HTML report."""
    pairs, requests = {}, []
    for r in records:
        qpath = query_file(paths.root, r["query"]["sha256"])
        q_req = None
        if qpath is not None:
            with open(qpath, "rb") as fh:
                ftype = sniff(fh.read(SNIFF_BYTES))
            q_req = request_for_file(qpath, r["query"]["sha256"], ftype.label, ftype.kind,
                                     0.0 if ftype.kind == "video" else None)
        c_req = request_for_media(conn, r["candidate"]["sha256"], r["candidate"]["video_time_s"])
        face = face_box(conn, r["candidate"]["face_id"]) if r["candidate"]["face_id"] else None
        pairs[r["decision_id"]] = (q_req, c_req, [face] if face else [])
        requests += [x for x in (q_req, c_req) if x]
    thumbs = ensure_thumbs(paths.thumbs, requests)
    out = {}
    for decision_id, (q_req, c_req, boxes) in pairs.items():
        q_thumb = thumbs.get(q_req.key) if q_req else None
        c_thumb = thumbs.get(c_req.key) if c_req else None
        out[decision_id] = (render(q_thumb, revealed=True) if q_thumb else None,
                            render(c_thumb, revealed=True, boxes=boxes) if c_thumb else None)
    return out


if st.button("Prepare export"):
    data, name, error = build_export(conn, paths.root, fmt, user, _images() if with_images else None,
                                     allow_broken=allow_broken)
    if error:
        st.error(esc(error))
    else:
        st.session_state["_vp_export"] = (data, name, FORMATS[fmt])
ready = st.session_state.get("_vp_export")
if ready:
    data, name, mime = ready
    st.download_button(f"Download {name}", data=data, file_name=name, mime=mime)
    st.caption(f"{len(data):,} bytes")
