"""The audit trail: chain verification and the newest entries."""

from __future__ import annotations

import streamlit as st

from ui import session
from vidpipe.store import audit

user = session.require("audit")
conn = session.conn()
st.title("Audit trail")
status = audit.chain_status(conn)
if status["ok"]:
    st.success(f"The hash chain verifies: {status['entries']} entries, head seq {status['head_seq']} "
               f"({status['head_hash']}).")
else:
    st.error(f"The hash chain is broken at entry {status['first_broken']}: {status['problem']}. "
             f"Entries up to {status['head_seq']} verify.")
limit = st.number_input("Entries to show", min_value=10, max_value=5000, value=200, step=50)
st.dataframe(audit.recent(conn, int(limit)), hide_index=True, width="stretch")
