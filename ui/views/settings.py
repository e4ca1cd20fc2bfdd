"""My settings: each user's wellness settings (blur strength, reveal time, break reminders)."""

from __future__ import annotations

import dataclasses

import streamlit as st

from ui import session
from ui.auth import BLUR_CHOICES, REVEAL_CHOICES, Prefs, save_prefs
from vidpipe.store import audit

BLUR_NAMES = {0.03: "light", 0.05: "standard", 0.08: "strong", 0.12: "very strong"}

user = session.require("view")
conn = session.conn()
current = session.prefs()
st.title("My settings")
st.caption("How pictures are shown to you. Every picture is blurred and grey until you reveal it; "
           "each reveal is logged.")
with st.form("prefs"):
    blur_options = sorted({*BLUR_CHOICES, current.blur_share})
    blur = st.select_slider("Blur strength", options=blur_options, value=current.blur_share,
                            format_func=lambda v: f"{BLUR_NAMES.get(v, 'custom')} ({v:.2f} of the width)",
                            key="pref_blur")
    reveal_options = sorted({*REVEAL_CHOICES, current.reveal_s})
    reveal_s = st.selectbox("A revealed picture blurs again after", reveal_options,
                            index=reveal_options.index(current.reveal_s), key="pref_reveal",
                            format_func=lambda v: "never (until you log out)" if v == 0 else f"{v} s")
    break_every = st.number_input("Remind me to take a break every N revealed pictures (0 = never)",
                                  min_value=0, max_value=10000, value=current.break_every, step=5,
                                  key="pref_break_every")
    break_minutes = st.number_input("Remind me to take a break every N minutes (0 = never)", min_value=0,
                                    max_value=1440, value=current.break_minutes, step=10, key="pref_break_minutes")
    saved = st.form_submit_button("Save")
if saved:
    new = Prefs(float(blur), int(reveal_s), int(break_every), int(break_minutes))
    error = save_prefs(conn, user.user_id, new)
    if error:
        st.error(error)
    else:
        audit.append(conn, user.name, "prefs_change", user.name, dataclasses.asdict(new))
        st.success("Saved.")
