"""vidpipe review UI: the Streamlit entry point (``vidpipe ui --case DIR``).

Navigation is decided on the server for every run: a session that is not logged in is given
only the login page, and a logged-in user only the pages their role allows. Each page checks
the permission again itself, and each action checks it once more where it writes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `streamlit run ui/app.py` puts only ui/ on the path
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from ui import session  # noqa: E402
from ui.auth import can  # noqa: E402
from ui.view import esc, exposure_sidebar  # noqa: E402

# (file, title, url path, permission). The folder is `views/`, not `pages/`: Streamlit runs a
# `pages/` folder beside the entry script as a v1 multipage app, where a page file can be run by
# URL without this script (and its navigation) running first.
PAGES = [
    ("views/overview.py", "Case overview", "overview", "view"),
    ("views/calibration.py", "Calibration", "calibration", "view"),
    ("views/search.py", "Search", "search", "search"),
    ("views/review.py", "Review queue", "review", "decide"),
    ("views/media.py", "Media detail", "media", "view"),
    ("views/people.py", "People", "people", "view"),
    ("views/hits.py", "Known-hash hits", "hits", "view"),
    ("views/exports.py", "Exports", "exports", "export"),
    ("views/audit.py", "Audit trail", "audit", "audit"),
    ("views/ingest.py", "Ingest", "ingest", "ingest"),
    ("views/users.py", "Users", "users", "manage_users"),
    ("views/settings.py", "My settings", "settings", "view"),
]

# Hide Streamlit's developer chrome (Deploy button, app menu, toolbar) and its decoration;
# `client.toolbarMode = "minimal"` already removes most of it, this covers the rest.
_CHROME_CSS = """<style>
[data-testid="stToolbar"], [data-testid="stAppDeployButton"], [data-testid="stMainMenu"],
[data-testid="stDecoration"], #MainMenu, footer {display: none !important; visibility: hidden !important;}
</style>"""


def _pages_for(role: str | None) -> list:
    if role is None:
        return [st.Page("views/login.py", title="Log in", url_path="login", default=True)]
    allowed = [p for p in PAGES if can(role, p[3])]
    return [st.Page(f, title=t, url_path=u, default=(i == 0)) for i, (f, t, u, _) in enumerate(allowed)]


@st.fragment(run_every=5)
def _idle_watch() -> None:
    """Re-run the app when the session has gone idle, so the login replaces what was shown, and
    when a revealed image has passed the user's reveal time, so it is shown blurred again."""
    state = st.session_state.get("_vp_auth")
    if state and time.time() - state["last_active"] > session.idle_timeout_s() or session.reblur_due():
        st.rerun()


def main() -> None:
    st.set_page_config(page_title="vidpipe review", layout="wide", menu_items={})
    st.markdown(_CHROME_CSS, unsafe_allow_html=True)
    user = session.current_user()
    nav = st.navigation(_pages_for(user.role if user else None))
    if user is not None:
        st.sidebar.markdown(f"**{esc(user.name)}** · {user.role}")
        st.sidebar.caption(f"Case: {esc(session.case_paths().root)}")
        exposure_sidebar()
        if st.sidebar.button("Log out", key="logout"):
            session.logout("user")
            st.rerun()
        _idle_watch()
    nav.run()


main()
