"""Start an ingest of more evidence into this case (examiner and admin only)."""

from __future__ import annotations

import os

import streamlit as st

from ui import session
from ui.jobs import start_ingest
from ui.view import esc

user = session.require("ingest")
st.title("Ingest evidence")
job = st.session_state.get("_vp_ingest")
if job:
    proc, log = job
    code = proc.poll()
    st.write(f"Ingest process {proc.pid}: " + ("running" if code is None else f"finished with exit code {code}"))
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    st.code(tail or "(no output yet)", language=None)
    if st.button("Refresh"):
        st.rerun()
    if code is None:
        st.stop()

with st.form("ingest"):
    sources = st.text_area("Evidence folders, files or archives (absolute paths, one per line)")
    workers = st.number_input("Workers", min_value=1, max_value=64, value=os.cpu_count() or 2)
    faces = st.checkbox("Detect faces", value=True)
    start = st.form_submit_button("Start ingest")
if start:
    proc, log, error = start_ingest(session.conn(), session.case_paths().root, user, sources.splitlines(),
                                    int(workers), faces)
    if error:
        st.error(esc(error))
    else:
        st.session_state["_vp_ingest"] = (proc, log)
        st.rerun()
