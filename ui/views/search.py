"""Search by reference photo: face, scene, near-duplicate or video; a results grid with scores.

Results go to the case's shared review queue (ui/queue.py) with who sent them; each result shows
every earlier decision on its pair; below-threshold results can be rejected in one go with one
reason. In a multi-face query each query face has a colour and a letter, on the query picture and
on every result it matched.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import charts, queue, session, view, zoom
from ui.auth import can
from ui.decisions import candidates_from_search
from ui.review_rules import OPPOSITE, bulk_reject_below, describe, pair_decisions
from ui.search_backend import MODES, QUERY_MAX_MB, Query, run_search, save_query, search_unavailable
from ui.thumbs import ensure_thumbs, request_for_file, request_for_media
from vidpipe.store import audit

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "heic", "heif", "avif", "tif", "tiff", "bmp", "gif",
                "mp4", "mov", "m4v", "mkv", "avi", "3gp"]
GRID_COLUMNS = 4

user = session.require("search")
conn = session.conn()
root = session.case_paths().root
st.title("Search")
flash = st.session_state.pop("_vp_search_flash", None)
if flash:
    st.success(flash)
problem = search_unavailable()
if problem:
    st.warning(problem)
    st.stop()

with st.form("search"):
    mode = st.selectbox("Mode", MODES, help="face: the same person · scene: the same room or place · "
                        "near-dup: edited copies · video: the same video")
    top_k = st.number_input("Results", min_value=1, max_value=200, value=20)
    upload = st.file_uploader(f"Query photo (video for video mode), at most {QUERY_MAX_MB} MB", type=UPLOAD_TYPES)
    go = st.form_submit_button("Search")

if go:
    if upload is None:
        st.error("Choose a query file first.")
    else:
        query, error = save_query(root, upload.getvalue(), mode)
        result = None
        if query is not None:
            result, error = run_search(root, query, mode, int(top_k))
        if error:
            st.error(view.esc(error))
            audit.append(conn, user.name, "search_failed", query.sha256 if query else None,
                         {"mode": mode, "query_file": upload.name, "error": error[:500]})
        else:
            n_above = sum(1 for r in result["results"] if r.get("above_threshold"))
            audit.append(conn, user.name, "search", query.sha256, {
                "mode": mode, "top_k": int(top_k), "query_file": upload.name, "threshold": result.get("threshold"),
                "results": len(result["results"]), "above_threshold": n_above,
                "faces_in_query": len((result.get("query") or {}).get("faces") or [])})
            st.session_state["_vp_search"] = {"query": query.as_dict(mode), "result": result}

last = st.session_state.get("_vp_search")
if not last:
    st.stop()
q, result = last["query"], last["result"]
query = Query(Path(q["path"]), q["sha256"], q["label"], q["kind"])
candidates = candidates_from_search(result, q)
query_faces = [f["box"] for f in (result.get("query") or {}).get("faces") or []]
# Scene mode: the body regions left out of the room comparison are drawn on the query instead.
query_boxes = query_faces or list((result.get("query") or {}).get("masked") or [])
by_rank = {r["rank"]: r for r in result.get("results") or []}
threshold = result.get("threshold")

requests = [request_for_file(query.path, query.sha256, query.label, query.kind,
                             0.0 if query.kind == "video" else None)]
cand_requests = [request_for_media(conn, c.media_sha256, c.video_time_s) for c in candidates]
thumbs = ensure_thumbs(session.case_paths().thumbs, requests + [r for r in cand_requests if r])

left, right = st.columns([1, 3])
with left:
    st.subheader("Query")
    view.show(user, thumbs.get(requests[0].key), key=requests[0].key, sha256=query.sha256,
              boxes=query_boxes, colours=[view.face_colour(i)[1] for i in range(len(query_faces))] or None,
              labels=[f"face {view.face_label(i)}" for i in range(len(query_faces))] or None,
              caption=(f"{q['mode']} query · {len(query_faces)} face(s)" if q["mode"] != "scene"
                       else f"scene query · {len(query_boxes)} person region(s) left out"),
              slot="query", zoom=requests[0])
with right:
    st.subheader(f"{len(candidates)} results")
    st.write("Threshold: " + (f"**{threshold:.3f}** (score ≥ threshold counts as a match)" if threshold is not None
                              else "**none calibrated** — scores are a ranking only"))
    source = result.get("threshold_source")
    if isinstance(source, dict):
        facts = [f"{k} {source[k]}" for k in ("target", "far", "frr", "n_genuine", "n_impostor") if source.get(k)]
        origin = source.get("default") or (f"calibration {source['calibration_id']}"
                                           if source.get("calibration_id") else "")
        st.caption(view.esc(" · ".join([origin, *facts]).strip(" ·")))
    charts.score_histogram([c.score for c in candidates], threshold)
    if len(query_faces) > 1:
        st.markdown("Query faces: " + " · ".join(view.face_tag(i) for i in range(len(query_faces))))
    queued = queue.queued_keys(conn)
    # The search's own face id for a query face, when it reports one (the query is a case photo).
    face_ids = {i: f["face_id"] for i, f in enumerate((result.get("query") or {}).get("faces") or [])
                if f.get("face_id") is not None}
    above = [c for c in candidates if c.above_threshold and f"{c.mode}:{c.key}" not in queued]
    if can(user.role, "search") and above and st.button(f"Send the {len(above)} results above the threshold "
                                                        "to the review queue", key="send_above"):
        new, error = queue.enqueue(conn, user, above, face_ids)
        st.session_state["_vp_search_flash"] = error or f"{len(new)} candidate(s) added to the review queue."
        st.rerun()
    below = [c for c in candidates if c.threshold is not None and c.score is not None and c.score < c.threshold]
    if can(user.role, "decide") and below:
        with st.expander(f"Reject the {len(below)} results below the threshold"):
            bulk_reason = st.text_input("Reason for all of them (required)", key="bulk_reason")
            if st.button(f"Reject {len(below)} below-threshold results", key="bulk_reject"):
                ids, skipped, error = bulk_reject_below(conn, user, below, bulk_reason)
                if error:
                    st.error(view.esc(error))
                else:
                    note = f" {len(skipped)} skipped (decided before): {'; '.join(skipped)}" if skipped else ""
                    st.session_state["_vp_search_flash"] = f"{len(ids)} result(s) rejected below the threshold.{note}"
                    st.rerun()

for start in range(0, len(candidates), GRID_COLUMNS):
    cols = st.columns(GRID_COLUMNS)
    for col, cand, req in zip(cols, candidates[start:start + GRID_COLUMNS],
                              cand_requests[start:start + GRID_COLUMNS], strict=False):
        with col:
            mark = "✔ above" if cand.above_threshold else "below"
            when = f" · t={cand.video_time_s:.2f}s" if cand.video_time_s is not None else ""
            score = "n/a" if cand.score is None else f"{cand.score:.3f}"
            caption = f"#{cand.rank} · score {score} ({mark}){when}"
            if len(query_faces) > 1 and cand.query_face is not None:
                caption += f" · face {view.face_label(cand.query_face)}"
            raw = by_rank.get(cand.rank, {})
            if "cosine" in raw:  # scene mode: what the score is made of, and the place if labelled
                geometry = f" · {raw['inliers']} inliers" if raw.get("inliers") is not None else " · not verified"
                caption += f" · cosine {raw['cosine']:.3f}{geometry}"
            view.show(user, thumbs.get(req.key) if req else None, key=req.key if req else cand.key,
                      sha256=cand.media_sha256, caption=caption, boxes=[cand.box] if cand.box else [],
                      slot=f"r{cand.rank}q{cand.query_face}", zoom=req, tile=view.TILE,
                      colours=[view.face_colour(cand.query_face)[1]] if cand.query_face is not None else None,
                      labels=[f"face {view.face_label(cand.query_face)}"] if cand.query_face is not None
                      and len(query_faces) > 1 else None)
            if len(query_faces) > 1 and cand.query_face is not None:
                st.markdown(f"matched {view.face_tag(cand.query_face)}")
            st.caption(view.esc(Path(cand.media_path).name or cand.media_sha256[:16]))
            if raw.get("place"):
                st.caption("Place: " + view.esc(raw["place"]["name"]))
            if raw.get("matches") and req and thumbs.get(req.key) and thumbs.get(requests[0].key):
                with st.expander(f"Room points ({raw['inliers']})"):
                    st.image(view.render_matches(
                        thumbs[requests[0].key], thumbs[req.key], raw["matches"],
                        left_revealed=session.is_revealed(requests[0].key),
                        right_revealed=session.is_revealed(req.key)),
                        caption="Matched points that fit one room geometry (query left)")
                    zoom.matches_button(user, zoom.Picture(requests[0], requests[0].key, query.sha256, "query"),
                                        zoom.Picture(req, req.key, cand.media_sha256, "result"), raw["matches"],
                                        slot=f"m{cand.rank}", caption="Matched room points (query left)")
            earlier = pair_decisions(conn, cand)
            if earlier:
                standing = {d["decision"] for d in earlier if d["overruled_by"] is None and d["decision"] in OPPOSITE}
                head = "⚠ conflicting decisions" if len(standing) > 1 else "Decided before"
                st.caption(view.esc(f"{head}: " + "; ".join(describe(earlier))))
            b1, b2 = st.columns(2)
            in_queue = f"{cand.mode}:{cand.key}" in queued
            if in_queue:
                b1.caption("in the queue")
            elif can(user.role, "search") and b1.button("Queue", key=f"q_{cand.key}"):
                new, error = queue.enqueue(conn, user, [cand], face_ids)
                st.session_state["_vp_search_flash"] = error or f"{len(new)} candidate(s) added to the review queue."
                st.rerun()
            if b2.button("Details", key=f"d_{cand.key}"):
                st.session_state["_vp_detail_sha"] = cand.media_sha256
                st.switch_page("views/media.py")
