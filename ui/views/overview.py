"""Case overview: runs with their provenance, counts, failures by reason, and the case in pictures:
EXIF capture dates, cameras and serials, GPS positions on an offline map (ui/charts.py)."""

from __future__ import annotations

import json

import streamlit as st

from ui import charts, session
from ui.view import esc
from vidpipe.reporting.report import case_report
from vidpipe.store import audit
from vidpipe.store.queries.overview import camera_rows, capture_hours, decision_count, face_count, gps_places


def _when(ts: str | None) -> str:
    return "" if not ts else ts[:19].replace("T", " ")


MAP_MAX_POINTS = 5000  # distinct places drawn; more would slow every browser that opens the page


def _pictures(c) -> None:
    """Timeline, cameras and map of the case, grouped in SQL (a case may hold millions of items)."""
    st.subheader("Capture dates")
    hours = capture_hours(c)
    undated = sum(h["n"] for h in hours if charts.exif_datetime(h["hour"]) is None)
    charts.show(charts.timeline_chart([h["hour"] for h in hours], [h["n"] for h in hours]))
    st.caption("Times are each camera's own clock as recorded (EXIF DateTimeOriginal), without a time zone."
               + (f" {undated} item(s) with EXIF but no usable capture date are not shown." if undated else ""))
    st.subheader("Cameras and serials")
    cams = camera_rows(c)
    counts = charts.camera_counts(cams, [r["items"] for r in cams])
    charts.show(charts.camera_chart(counts))
    if counts:
        with st.expander(f"All {len(counts)} camera/serial combinations"):
            st.dataframe(counts, hide_index=True, width="stretch")
    st.subheader("Places")
    # Positions rounded to 1e-4 degree (about 11 m) and counted, so a large case stays one chart.
    spots = gps_places(c, MAP_MAX_POINTS)
    charts.show(charts.gps_map_chart([{"lat": r["lat"], "lon": r["lon"], "label": f"{r['n']} item(s)"}
                                      for r in spots]), width="content")
    if len(spots) == MAP_MAX_POINTS:
        st.caption(f"The {MAP_MAX_POINTS} places with the most items are shown.")


session.require("view")
conn = session.conn()
rep = case_report(conn)

st.title("Case overview")
st.caption(esc(session.case_paths().root))
by_status = rep["by_status"]
cols = st.columns(5)
cols[0].metric("Items", rep["items"])
for col, status in zip(cols[1:], ("ok", "partial", "failed", "skipped"), strict=True):
    col.metric(status.capitalize(), sum(by_status.get(status, {}).values()))
kinds = rep["media_by_kind"]
faces = face_count(conn)
decisions = decision_count(conn)
st.write(f"Media: {', '.join(f'{k} {v}' for k, v in sorted(kinds.items())) or 'none'} · faces {faces} · "
         f"decisions {decisions} · with GPS {rep['with_gps']} · extension mismatches {rep['extension_mismatches']}")

_pictures(conn)

st.subheader("Failures and skips by reason")
rows = [{"status": status, "reason": reason, "items": n}
        for status in ("failed", "partial", "skipped", "unfinished")
        for reason, n in sorted(by_status.get(status, {}).items(), key=lambda kv: -kv[1])]
if rows:  # st.table: small, static HTML that prints and screenshots as shown
    st.table(rows)
else:
    st.write("None.")

st.subheader("Runs")
st.table([{"started (UTC)": _when(r["started_utc"]), "ended (UTC)": _when(r["ended_utc"]),
           **{k: r[k] for k in ("command", "status", "operator", "tool_version", "git_commit")}}
          for r in rep["runs"]])
st.subheader("Provenance")
st.write("Sources: " + (", ".join(esc(s) for s in rep["sources"]) or "none"))
for r in rep["runs"]:
    with st.expander(esc(f"Run {r['run_id']} ({r['command']}, {r['status']})")):
        st.code(json.dumps(r, indent=2), language="json")

status = audit.chain_status(conn)
st.subheader("Audit trail")
if status["ok"]:
    st.write(f"{status['entries']} entries; the hash chain verifies (head {status['head_hash'][:16]}…).")
else:
    st.error(f"The audit chain is broken at entry {status['first_broken']}: {status['problem']}")
