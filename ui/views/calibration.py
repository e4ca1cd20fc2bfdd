"""Calibration: the thresholds stored in the case, each with its ROC curve and chosen operating point.

The numbers come from ``vidpipe calibrate faces`` (vidpipe/search/calibrate.py), which stores the
measured error rates and the ROC points in the ``calibrations`` table.
"""

from __future__ import annotations

import json

import streamlit as st

from ui import charts, session
from ui.view import esc
from vidpipe.store.queries.calibrations import all_calibrations

session.require("view")
conn = session.conn()
st.title("Calibration")
rows = all_calibrations(conn)
if not rows:
    st.info("No calibration in this case yet. `vidpipe calibrate faces --case DIR --labels CSV` measures the face "
            "threshold on labelled photos; until then searches use the documented default thresholds.")
    st.stop()


def _name(row: dict) -> str:
    state = "in use" if row["active"] else "replaced"
    return (f"#{row['calibration_id']} · {row['kind']} · {row['model_key'] or 'any model'} · {row['target']} · "
            f"{(row['created_utc'] or '')[:10]} ({state})")


by_id = {r["calibration_id"]: r for r in rows}
chosen = by_id[st.selectbox("Calibration", list(by_id), format_func=lambda i: _name(by_id[i]), key="calibration_pick")]
try:
    detail = json.loads(chosen["detail"]) if chosen["detail"] else {}
except ValueError:
    detail = {}

cols = st.columns(4)
cols[0].metric("Threshold", f"{chosen['threshold']:.4f}")
cols[1].metric("False-match rate", "n/a" if chosen["far"] is None else f"{chosen['far']:.4g}")
cols[2].metric("False-non-match rate", "n/a" if chosen["frr"] is None else f"{chosen['frr']:.4g}")
cols[3].metric("Pairs (genuine / impostor)", f"{chosen['n_genuine'] or 0} / {chosen['n_impostor'] or 0}")
if chosen["far"] is not None and chosen["frr"] is not None:
    st.write(f"A score of **{chosen['threshold']:.4f}** or more counts as a match. On the labelled set that "
             f"accepted {chosen['far']:.3%} of the different-person pairs and missed {chosen['frr']:.3%} of the "
             f"same-person pairs (target {esc(chosen['target'])}).")

charts.show(charts.roc_chart(charts.roc_points(detail), chosen))
facts = [f"AUC {detail['auc']:.4f}" if detail.get("auc") is not None else "",
         f"equal error rate {detail['eer']:.4f} at threshold {detail['eer_threshold']:.4f}"
         if detail.get("eer") is not None and detail.get("eer_threshold") is not None else ""]
if any(facts):
    st.caption(" · ".join(f for f in facts if f))
if detail.get("at_far"):
    st.subheader("Thresholds at standard false-match rates")
    st.table([{"target FAR": p["target_far"], "threshold": p["threshold"], "measured FAR": p["far"],
               "FRR": p["frr"]} for p in detail["at_far"]])
if chosen["labels"]:
    try:
        labels = json.loads(chosen["labels"])
    except ValueError:
        labels = {}
    st.caption(esc(f"Labelled set: {labels.get('path', '?')} (SHA-256 {labels.get('sha256', '?')}); "
                   f"{labels.get('enrolled', '?')} of {labels.get('photos', '?')} photos enrolled, "
                   f"{labels.get('identities', '?')} identities."))
failed = detail.get("failed_to_enrol") or []
if failed:
    with st.expander(f"{len(failed)} photo(s) failed to enrol"):
        st.dataframe(failed, hide_index=True, width="stretch")
if detail.get("protocol"):
    st.caption(esc(f"Protocol: {detail['protocol']}"))
