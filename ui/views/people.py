"""People: face clusters across the case, with the reviewer's merge / split / not-this-person.

Each action is a constraint that binds every later clustering (a rejected face stays rejected);
the page re-clusters at once so the reviewer sees the effect. Every person is shown by a face
crop, and the chosen person by all of theirs, blurred until revealed like every image.
"not this person" acts on the one face the reviewer picks; nothing is picked for them.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from ui import session, view
from ui.auth import can
from ui.thumbs import ensure_thumbs, request_for_media
from ui.view import esc
from vidpipe.errors import VidpipeError
from vidpipe.people.store import add_constraint, run_clustering
from vidpipe.store import audit
from vidpipe.store.queries.overview import face_count
from vidpipe.store.queries.people import faces_by_id, latest_clustering, person_members, person_sizes

GRID_COLUMNS = 6
MAX_PERSONS_SHOWN = 24  # per page, largest first; each is one face crop made in a sandboxed worker
MAX_FACES_SHOWN = 48


def threshold_words(source_json: str | None) -> str:
    """The clustering threshold's origin as a sentence (the column holds JSON)."""
    try:
        src: dict[str, Any] = json.loads(source_json or "{}")
    except ValueError:
        return str(source_json)
    if src.get("source") == "command line":
        return "set by hand on the command line"
    if src.get("calibration_id"):
        words = f"from this case's calibration #{src['calibration_id']}"
    elif src.get("default"):
        words = f"from the embedder's default calibration ({src['default']})"
    else:
        return "source not recorded"
    facts = []
    if src.get("target"):
        facts.append(f"aimed at {src['target']}")
    if src.get("far") is not None:
        facts.append(f"false match rate {src['far']:.4g}")
    if src.get("frr") is not None:
        facts.append(f"missed match rate {src['frr']:.4g}")
    if src.get("n_genuine") and src.get("n_impostor"):
        facts.append(f"measured on {src['n_genuine']} same-person and {src['n_impostor']} different-person pairs")
    return words + (": " + ", ".join(facts) if facts else "")


def face_grid(rows: list, captions: list[str], slot: str) -> None:
    """Blurred face crops in a grid, each with its own Reveal button."""
    requests = [request_for_media(conn, r["sha256"], r["video_time_s"], (r["x1"], r["y1"], r["x2"], r["y2"]))
                for r in rows]
    thumbs = ensure_thumbs(session.case_paths().thumbs, [q for q in requests if q])
    for start in range(0, len(rows), GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS)
        for col, r, req, caption in zip(cols, rows[start:start + GRID_COLUMNS], requests[start:start + GRID_COLUMNS],
                                        captions[start:start + GRID_COLUMNS], strict=False):
            with col:
                view.show(user, thumbs.get(req.key) if req else None, key=req.key if req else f"face{r['face_id']}",
                          sha256=r["sha256"], caption=caption, slot=f"{slot}{r['face_id']}",
                          detail={"face_id": r["face_id"]})


user = session.require("view")
conn = session.conn()
st.title("People")

if face_count(conn) == 0:
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


last = latest_clustering(conn)
if last is None or st.button("Re-cluster now", key="recluster", disabled=not can(user.role, "decide")):
    if can(user.role, "decide") or last is None:
        _recluster()
        last = latest_clustering(conn)
if last is not None:
    st.caption(f"Clustering #{last['clustering_id']}: {last['faces']} faces → {last['persons']} persons at cosine "
               f"≥ {last['threshold']:.3f}, {esc(threshold_words(last['threshold_source']))}")

persons = person_sizes(conn)
st.table([{"person": p["person_id"], "faces": p["faces"], "appears in files": p["files"]} for p in persons])
st.subheader("Persons")
pages = max(1, -(-len(persons) // MAX_PERSONS_SHOWN))
page = st.number_input(f"Page (of {pages}, largest persons first)", 1, pages, 1, key="person_page") if pages > 1 else 1
shown = persons[(page - 1) * MAX_PERSONS_SHOWN:page * MAX_PERSONS_SHOWN]
# Each person by their own face: the face whose id names the person (the cluster's first face).
faces_of = faces_by_id(conn, [p["person_id"] for p in shown])
face_grid([faces_of[p["person_id"]] for p in shown if p["person_id"] in faces_of],
          [f"person {p['person_id']} · {p['faces']} face(s) · {p['files']} file(s)" for p in shown
           if p["person_id"] in faces_of], "p")

chosen = st.selectbox("Person", [p["person_id"] for p in persons], key="person_pick")
members = person_members(conn, chosen)
st.subheader(f"Faces of person {chosen}")
face_grid(members[:MAX_FACES_SHOWN], [f"face {m['face_id']}" + (f" · t={m['video_time_s']:.2f}s"
                                                                  if m["video_time_s"] is not None else "")
                                      for m in members[:MAX_FACES_SHOWN]], "m")
st.table([{"face": m["face_id"], "file": esc(m["path"]), "time (s)": m["video_time_s"],
           "detection score": round(m["det_score"], 3)} for m in members])

if not can(user.role, "decide"):
    st.stop()
st.subheader("Correct the clustering")
reason = st.text_input("Reason (required)", key="people_reason").strip()
face_ids = [m["face_id"] for m in members]
col1, col2, col3 = st.columns(3)
with col1:
    # No face is chosen for the reviewer: the action waits for an explicit pick.
    wrong = st.selectbox("Not this person: face", face_ids, key="not_this", index=None, placeholder="Choose a face")
    if st.button("Not this person", key="do_not_this",
                 disabled=not reason or wrong is None or len(face_ids) < 2):
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
