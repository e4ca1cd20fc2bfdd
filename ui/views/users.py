"""Users (admin only): list, add, disable and re-enable local accounts."""

from __future__ import annotations

import streamlit as st

from ui import session
from ui.auth import ROLES, add_user, can, list_users, set_disabled
from ui.view import esc
from vidpipe.store import audit

user = session.require("manage_users")
conn = session.conn()
st.title("Users")
users = list_users(conn)
st.dataframe(users, hide_index=True, width="stretch")

st.subheader("Add a user")
with st.form("add_user", clear_on_submit=True):
    name = st.text_input("User name", help="Names are case-insensitive: 'Ann' and 'ann' are one account.")
    role = st.selectbox("Role", ROLES)
    password = st.text_input("Password", type="password", help="At least 12 characters; not a common password, "
                             "the user name, a repeated character or a keyboard sequence. A few words make a good one.")
    again = st.text_input("Password again", type="password")
    add = st.form_submit_button("Add user")
if add:
    if not can(user.role, "manage_users"):  # checked again where the write happens
        st.error("Not allowed.")
    elif password != again:
        st.error("The passwords differ.")
    elif not name.strip():
        st.error("Give a user name.")
    else:
        new, error = add_user(conn, name, role, password)
        if error:
            st.error(esc(error))
        else:
            audit.append(conn, user.name, "user_add", new.name, {"role": new.role})
            st.success(f"Added {esc(new.name)} ({new.role}).")

st.subheader("Disable or re-enable")
others = [u["name"] for u in users if u["name"] != user.name]
if others:
    target = st.selectbox("User", others)
    c1, c2 = st.columns(2)
    for col, disabled, label in ((c1, True, "Disable"), (c2, False, "Enable")):
        if col.button(label) and can(user.role, "manage_users") and set_disabled(conn, target, disabled):
            audit.append(conn, user.name, "user_disable" if disabled else "user_enable", target)
            st.rerun()
