"""Review queue: the case's shared queue in score order; one pair at a time, decided with a reason.

The queue is in the database (ui/queue.py), so it is the same for every reviewer and survives a
reload or a restart; this session only remembers which item it has open. Deciding needs both
pictures revealed by this reviewer, and contradicting an earlier decision needs an overrule with
a reason (ui/review_rules.py checks both). Single keys work too (ui/keys.py).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import keys, queue, session, view
from ui.decisions import decisions_for_media
from ui.review_rules import OPPOSITE, decide, describe, pair_decisions, unseen
from ui.thumbs import ensure_thumbs, request_for_file, request_for_media

BUTTONS = (("confirmed", "Confirm — same", "kb_confirm"), ("rejected", "Reject — not the same", "kb_reject"),
           ("unsure", "Unsure", "kb_unsure"))

user = session.require("decide")
conn = session.conn()
st.title("Review queue")
flash = st.session_state.pop("_vp_flash", None)
if flash:
    st.success(flash)
items = queue.open_items(conn, user)
if not items:
    st.info("The queue is empty. Analysts send candidates to it from the Search page.")
    st.stop()

turn = int(st.session_state.get("_vp_decided", 0))  # a fresh reason box after every decision or move


def _open(item: queue.QueueItem | None, message: str | None = None) -> None:
    """Make ``item`` this session's open item, with a fresh decision area, and rerun."""
    st.session_state["_vp_review_item"] = item.item_id if item else None
    st.session_state["_vp_decided"] = turn + 1
    if message:
        st.session_state["_vp_flash"] = message
    st.rerun()


current = queue.get(conn, st.session_state.get("_vp_review_item") or 0)
if current is None or current.state != "open" or queue.held_by_other(current, user):
    # Nothing open yet (a new session), or someone else decided or took it: move on from there.
    current = queue.next_item(conn, user, after=current.item_id if current else None)
else:
    current, _ = queue.claim(conn, user, current.item_id)  # still working on it: the claim stays fresh
if current is None:
    st.info("Every open item is being reviewed by someone else right now.")
    st.stop()
st.session_state["_vp_review_item"] = current.item_id
cand = current.cand
if all(it.item_id != current.item_id for it in items):  # sent or skipped meanwhile: read the order again
    items = queue.open_items(conn, user)
position = next((i for i, it in enumerate(items, 1) if it.item_id == current.item_id), len(items))
rows = queue.summary_rows(items, current.item_id)

st.caption(keys.HELP)
keys.install()
with st.expander(f"{len(items)} open item(s), highest score first", expanded=False):
    st.dataframe(rows, hide_index=True)
choice_labels = {it.item_id: f"{row['#']}. score {row['score']} · {row['file']} · sent by {row['sent by']}"
                 for it, row in zip(items, rows, strict=True)}
choice = st.selectbox("Open another item", list(choice_labels), index=None, key=f"review_jump_{turn}",
                      placeholder="Choose an item of the queue", format_func=choice_labels.get)
if choice is not None and choice != current.item_id:
    picked, error = queue.claim(conn, user, choice)
    if error:
        st.error(view.esc(error))
    else:
        _open(picked)

st.subheader(f"Item {position} of {len(items)}")
st.write(f"Sent by **{view.esc(current.sent_by)}** at {current.sent_utc} from a {cand.mode} search "
         f"(rank {cand.rank})")

face_only = st.toggle("Face-only mode", value=True,
                      help="Show only the face crops (for identity decisions), not the whole images")
crop_query = face_only and cand.query_box is not None
crop_cand = face_only and cand.box is not None
q_time = 0.0 if cand.query_kind == "video" else None
q_req = request_for_file(Path(cand.query_path), cand.query_sha256, cand.query_label, cand.query_kind, q_time,
                         tuple(cand.query_box) if crop_query else None)
c_req = request_for_media(conn, cand.media_sha256, cand.video_time_s, tuple(cand.box) if crop_cand else None)
thumbs = ensure_thumbs(session.case_paths().thumbs, [r for r in (q_req, c_req) if r])
q_key, c_key = q_req.key, c_req.key if c_req else cand.key
colour = [view.face_colour(cand.query_face)[1]] if cand.query_face is not None else None
label = [f"face {view.face_label(cand.query_face)}"] if cand.query_face is not None else None
face_name = f" {view.face_tag(cand.query_face)}" if cand.query_face is not None else ""

left, right = st.columns(2)
with left:
    st.subheader("Query")
    view.show(user, thumbs.get(q_key), key=q_key, sha256=cand.query_sha256,
              boxes=[] if crop_query or cand.query_box is None else [cand.query_box], colours=colour, labels=label,
              caption=f"query face {view.face_label(cand.query_face)}" if cand.query_face is not None else "query",
              slot="query", zoom=q_req)
    st.caption(f"SHA-256 {cand.query_sha256}")
with right:
    st.subheader("Candidate")
    when = f" · video time {cand.video_time_s:.2f} s" if cand.video_time_s is not None else ""
    view.show(user, thumbs.get(c_key), key=c_key, sha256=cand.media_sha256,
              boxes=[] if crop_cand or cand.box is None else [cand.box], colours=colour, labels=label,
              caption=f"{cand.kind}{when}", slot="candidate", zoom=c_req)
    st.caption(view.esc(cand.media_path))
    st.caption(f"SHA-256 {cand.media_sha256}")

both_shown = session.is_revealed(q_key) and session.is_revealed(c_key)
if st.button("Reveal both", key="kb_reveal", disabled=both_shown,
             help="Show the query and the candidate unblurred (each reveal is logged)"):
    session.reveal(user, q_key, cand.query_sha256, {"queue_item_id": current.item_id})
    session.reveal(user, c_key, cand.media_sha256, {"queue_item_id": current.item_id})
    st.rerun()

score = "n/a" if cand.score is None else f"{cand.score:.4f}"
threshold = "none calibrated" if cand.threshold is None else f"{cand.threshold:.4f}"
verdict = "" if cand.above_threshold is None else (" — above" if cand.above_threshold else " — below")
st.write(f"**{cand.mode}** match{face_name} · rank {cand.rank} · score **{score}** · threshold {threshold}{verdict}")

earlier = pair_decisions(conn, cand)
standing = {d["decision"] for d in earlier if d["overruled_by"] is None and d["decision"] in OPPOSITE}
if earlier:
    lines = "\n".join(f"- {view.esc(line)}" for line in describe(earlier))
    (st.warning if standing else st.info)(f"Earlier decisions on this pair:\n{lines}")
others = [d for d in decisions_for_media(conn, cand.media_sha256)
          if d["decision_id"] not in {e["decision_id"] for e in earlier}]
if others:
    with st.expander(f"{len(others)} other decision(s) on this media item (other queries or faces)"):
        st.dataframe([{k: d[k] for k in ("decision_id", "decision", "reviewer", "decided_utc", "mode",
                                         "query_sha256", "integrity")} for d in others], hide_index=True)

missing = unseen(conn, user, cand)
if missing:
    st.caption(f"Reveal both pictures before confirming or rejecting ({' and '.join(missing)} not yet revealed "
               "by you).")
reason = st.text_area("Reason (required)", max_chars=2000, key=f"reason_{turn}")
overrule, overrule_reason = False, ""
if standing:
    overrule = st.checkbox("Overrule the earlier decision", key=f"overrule_{turn}")
    overrule_reason = st.text_input("Why the earlier decision is wrong (required to overrule)",
                                    key=f"overrule_reason_{turn}", disabled=not overrule)

cols = st.columns(len(BUTTONS) + 2)
clicked = None
for col, (decision, text, key) in zip(cols, BUTTONS, strict=False):
    if col.button(text, key=key):
        clicked = decision
skip_clicked = cols[-2].button("Skip", key="kb_skip", help="Put this item aside; it comes back after the others")
next_clicked = cols[-1].button("Next", key="kb_next", help="Open the next item without deciding this one")

if clicked:
    decision_id, error = decide(conn, user, current.item_id, clicked, reason,
                                overrule_reason if overrule else None)
    if error:
        st.error(view.esc(error))
    else:
        _open(queue.next_item(conn, user, after=current.item_id), f"Decision {decision_id} recorded: {clicked}.")
if skip_clicked:
    _open(queue.skip(conn, user, current.item_id), "Item skipped; it comes back after the others.")
if next_clicked:
    _open(queue.next_item(conn, user, after=current.item_id))
