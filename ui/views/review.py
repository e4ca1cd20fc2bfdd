"""Review queue: query and candidate side by side; confirm, reject or unsure, with a reason."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import session, view
from ui.decisions import DECISIONS, Candidate, decisions_for_media, record_decision
from ui.thumbs import ensure_thumbs, request_for_file, request_for_media

LABELS = {"confirmed": "Confirm — same", "rejected": "Reject — not the same", "unsure": "Unsure"}

user = session.require("decide")
conn = session.conn()
st.title("Review queue")
flash = st.session_state.pop("_vp_flash", None)
if flash:
    st.success(flash)
queue = st.session_state.get("_vp_queue", [])
if not queue:
    st.info("The queue is empty. Add candidates from the Search page.")
    st.stop()

face_only = st.toggle("Face-only mode", value=True,
                      help="Show only the face crops (for identity decisions), not the whole images")
labels = [f"{i + 1}. #{c['rank']} {Path(c['media_path']).name} · score "
          f"{'n/a' if c['score'] is None else format(c['score'], '.3f')}" for i, c in enumerate(queue)]
index = st.selectbox("Candidate", range(len(queue)), format_func=lambda i: labels[i])
item = queue[index]
cand = Candidate(**{k: v for k, v in item.items() if k != "key"})
crop_query = face_only and cand.query_box is not None
crop_cand = face_only and cand.box is not None

q_time = 0.0 if cand.query_kind == "video" else None
q_req = request_for_file(Path(cand.query_path), cand.query_sha256, cand.query_label, cand.query_kind, q_time,
                         tuple(cand.query_box) if crop_query else None)
c_req = request_for_media(conn, cand.media_sha256, cand.video_time_s, tuple(cand.box) if crop_cand else None)
thumbs = ensure_thumbs(session.case_paths().thumbs, [r for r in (q_req, c_req) if r])

left, right = st.columns(2)
with left:
    st.subheader("Query")
    view.show(user, thumbs.get(q_req.key), key=q_req.key, sha256=cand.query_sha256,
              boxes=[] if crop_query or cand.query_box is None else [cand.query_box],
              caption=f"query face {cand.query_face}" if cand.query_face is not None else "query", slot="query")
    st.caption(f"SHA-256 {cand.query_sha256}")
with right:
    st.subheader("Candidate")
    when = f" · video time {cand.video_time_s:.2f} s" if cand.video_time_s is not None else ""
    view.show(user, thumbs.get(c_req.key) if c_req else None, key=c_req.key if c_req else cand.key,
              sha256=cand.media_sha256, boxes=[] if crop_cand or cand.box is None else [cand.box],
              caption=f"{cand.kind}{when}", slot="candidate")
    st.caption(view.esc(cand.media_path))
    st.caption(f"SHA-256 {cand.media_sha256}")

score = "n/a" if cand.score is None else f"{cand.score:.4f}"
threshold = "none calibrated" if cand.threshold is None else f"{cand.threshold:.4f}"
verdict = "" if cand.above_threshold is None else (" — above" if cand.above_threshold else " — below")
st.write(f"**{cand.mode}** match · rank {cand.rank} · score **{score}** · threshold {threshold}{verdict}")

earlier = decisions_for_media(conn, cand.media_sha256)
if earlier:
    with st.expander(f"{len(earlier)} earlier decision(s) on this item"):
        st.dataframe(earlier, hide_index=True)

# A fresh form after each recorded decision; after a refused one the reason typed so far stays.
with st.form(f"decide_{st.session_state.get('_vp_decided', 0)}"):
    # No preselected answer: a decision is always an explicit choice.
    decision = st.radio("Decision", DECISIONS, format_func=LABELS.get, horizontal=True, index=None)
    reason = st.text_area("Reason (required)", max_chars=2000)
    submitted = st.form_submit_button("Record decision")
if submitted:
    decision_id, error = record_decision(conn, user, cand, decision or "", reason)
    if error:
        st.error(view.esc(error))
    else:
        queue.pop(index)
        st.session_state["_vp_decided"] = st.session_state.get("_vp_decided", 0) + 1
        st.session_state["_vp_flash"] = f"Decision {decision_id} recorded: {decision}."
        st.rerun()
