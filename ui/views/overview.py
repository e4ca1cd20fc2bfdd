"""Case overview: runs with their provenance, counts, failures by reason."""

from __future__ import annotations

import json

import streamlit as st

from ui import session
from ui.view import esc
from vidpipe.reporting.report import case_report
from vidpipe.store import audit


def _when(ts: str | None) -> str:
    return "" if not ts else ts[:19].replace("T", " ")


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
faces = conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
decisions = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
st.write(f"Media: {', '.join(f'{k} {v}' for k, v in sorted(kinds.items())) or 'none'} · faces {faces} · "
         f"decisions {decisions} · with GPS {rep['with_gps']} · extension mismatches {rep['extension_mismatches']}")

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
