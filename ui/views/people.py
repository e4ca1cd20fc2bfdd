"""People: face clusters across the case, with the reviewer's merge / split / not-this-person.

Each action is a constraint that binds every later clustering (a rejected face stays rejected);
the page re-clusters at once so the reviewer sees the effect. Face crops are shown on the
Review and Media pages, blurred until revealed; this page lists ids, files and times only.
"""

from __future__ import annotations

import streamlit as st

from ui import session
from ui.auth import can
from ui.view import esc
from vidpipe.errors import VidpipeError
from vidpipe.people.store import add_constraint, run_clustering
from vidpipe.store import audit

user = session.require("view")
conn = session.conn()
st.title("People")

if conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 0:
    st.info("No faces in this case yet.")
    st.stop()


def _recluster() -> dict | None:
    try:
        summary = run_clustering(conn)
    except VidpipeError as exc:
        st.error(esc(exc))
        return None
    audit.append(conn, user.name, "cluster", None, {"persons": summary["persons"], "faces": summary["faces"],
                                                    "threshold": summary["threshold"]})
    return summary


last = conn.execute("SELECT * FROM clusterings ORDER BY clustering_id DESC LIMIT 1").fetchone()
if last is None or st.button("Re-cluster now", key="recluster", disabled=not can(user.role, "decide")):
    if can(user.role, "decide") or last is None:
        _recluster()
        last = conn.execute("SELECT * FROM clusterings ORDER BY clustering_id DESC LIMIT 1").fetchone()
if last is not None:
    st.caption(f"Clustering #{last['clustering_id']}: {last['faces']} faces → {last['persons']} persons at cosine "
               f"≥ {last['threshold']:.3f} ({esc(last['threshold_source'])})")

persons = conn.execute(
    "SELECT fp.person_id, COUNT(*) AS faces, COUNT(DISTINCT f.sha256) AS files FROM face_person fp "
    "JOIN faces f ON f.face_id = fp.face_id GROUP BY fp.person_id ORDER BY faces DESC, fp.person_id").fetchall()
st.table([{"person": p["person_id"], "faces": p["faces"], "appears in files": p["files"]} for p in persons])

chosen = st.selectbox("Person", [p["person_id"] for p in persons], key="person_pick")
members = conn.execute(
    "SELECT f.face_id, f.video_time_s, f.det_score, (SELECT i.locator FROM items i WHERE i.sha256 = f.sha256 "
    "ORDER BY i.locator_bytes LIMIT 1) AS path FROM face_person fp JOIN faces f ON f.face_id = fp.face_id "
    "WHERE fp.person_id = ? ORDER BY f.face_id", (chosen,)).fetchall()
st.table([{"face": m["face_id"], "file": esc(m["path"]), "time (s)": m["video_time_s"],
           "detection score": round(m["det_score"], 3)} for m in members])

if not can(user.role, "decide"):
    st.stop()
st.subheader("Correct the clustering")
reason = st.text_input("Reason (required)", key="people_reason").strip()
face_ids = [m["face_id"] for m in members]
col1, col2, col3 = st.columns(3)
with col1:
    wrong = st.selectbox("Not this person: face", face_ids, key="not_this")
    if st.button("Not this person", key="do_not_this", disabled=not reason or len(face_ids) < 2):
        anchor = chosen if wrong != chosen else next(f for f in face_ids if f != wrong)
        add_constraint(conn, wrong, anchor, "cannot_link", user.name, reason)
        audit.append(conn, user.name, "not_this_person", str(wrong), {"person": chosen, "reason": reason})
        _recluster()
        st.rerun()
with col2:
    other = st.selectbox("Merge with person", [p["person_id"] for p in persons if p["person_id"] != chosen],
                         key="merge_with")
    if st.button("Merge", key="do_merge", disabled=not reason or other is None):
        add_constraint(conn, chosen, other, "must_link", user.name, reason)
        audit.append(conn, user.name, "merge_persons", f"{chosen}+{other}", {"reason": reason})
        _recluster()
        st.rerun()
with col3:
    pair = st.multiselect("Split: these two faces are different people", face_ids, max_selections=2,
                          key="split_pair")
    if st.button("Split", key="do_split", disabled=not reason or len(pair) != 2):
        add_constraint(conn, pair[0], pair[1], "cannot_link", user.name, reason)
        audit.append(conn, user.name, "split_faces", f"{pair[0]}|{pair[1]}", {"reason": reason})
        _recluster()
        st.rerun()
