"""Log in. The only page a session without a user ever gets."""

from __future__ import annotations

import streamlit as st

from ui import session

st.title("vidpipe review")
notice = st.session_state.pop("_vp_notice", None)
if notice:
    st.info(notice)
with st.form("login", clear_on_submit=True):
    name = st.text_input("User name", key="login_name")
    password = st.text_input("Password", type="password", key="login_password")
    submitted = st.form_submit_button("Log in")
if submitted:
    error = session.login(name, password)
    if error:
        st.error(error)
    else:
        st.rerun()
st.caption("Accounts are created with `vidpipe user add NAME --role ROLE --case DIR --password-stdin`.")
