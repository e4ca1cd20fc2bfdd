"""Bigger pictures on demand: a "Zoom" button under an image opens a large dialog.

The dialog shows a bigger derivative (``thumbs.zoom_request``: made in the same sandboxed
worker, at most ``ZOOM_MAX_SIDE`` pixels) under the same wellness rules as the thumbnail: it is
blurred greyscale until revealed, the reveal state is the thumbnail's own (revealing in the
dialog reveals the picture everywhere, and the other way round), and a reveal in the dialog is
logged like any other, with ``"view": "zoom"`` in its detail.

Which dialog is open lives in the session (``_vp_zoom``), so it stays open across the full
reruns a reveal causes and closes when the reviewer dismisses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from ui import session, view
from ui.auth import User, can
from ui.thumbs import ThumbRequest, ensure_thumbs, zoom_request

_STATE = "_vp_zoom"


@dataclass(frozen=True)
class Picture:
    """One picture to enlarge: how to make it, whose reveal state it shares, what it shows."""

    request: ThumbRequest
    key: str            # the thumbnail key: the reveal state shared with the grid cell
    sha256: str
    name: str = "picture"
    boxes: tuple = ()
    colours: tuple | None = None
    labels: tuple | None = None


def button(user: User, picture: Picture, *, slot: str, caption: str = "", detail: dict | None = None) -> None:
    """A Zoom button for one picture; the dialog opens on a click and stays open until dismissed."""
    ident = f"{slot}_{picture.key}"
    if st.button("Zoom", key=f"zoom_{ident}", icon=":material/zoom_in:",
                 help="A bigger version in a dialog (still blurred until revealed)"):
        st.session_state[_STATE] = {"id": ident, "pictures": (picture,), "matches": None,
                                    "caption": caption, "detail": detail or {}}
    _open_if(user, ident)


def matches_button(user: User, left: Picture, right: Picture, matches: Sequence[Sequence[float]], *,
                   slot: str, caption: str = "") -> None:
    """A Zoom button for the side-by-side "room points" picture of a scene match."""
    ident = f"{slot}_{left.key}_{right.key}"
    if st.button("Zoom room points", key=f"zoom_{ident}", icon=":material/zoom_in:",
                 help="The matched points side by side, bigger (each side blurred until revealed)"):
        st.session_state[_STATE] = {"id": ident, "pictures": (left, right), "matches": [list(m) for m in matches],
                                    "caption": caption, "detail": {}}
    _open_if(user, ident)


def _open_if(user: User, ident: str) -> None:
    spec = st.session_state.get(_STATE)
    if spec and spec["id"] == ident:
        _dialog(user, spec)


def _close() -> None:
    st.session_state.pop(_STATE, None)


@st.dialog("Bigger picture", width="large", on_dismiss=_close)
def _dialog(user: User, spec: dict) -> None:
    # Shown at its own size (up to the dialog's width): a small original is not blown up.
    pictures: tuple[Picture, ...] = spec["pictures"]
    big = ensure_thumbs(session.case_paths().thumbs, [zoom_request(p.request) for p in pictures])
    thumbs = [big.get(zoom_request(p.request).key) for p in pictures]
    if any(t is None for t in thumbs):
        st.info("No bigger preview (not decodable as an image).")
    elif spec["matches"] is not None:
        left, right = pictures
        st.image(view.render_matches(thumbs[0], thumbs[1], spec["matches"],
                                     left_revealed=session.is_revealed(left.key),
                                     right_revealed=session.is_revealed(right.key)),
                 caption=spec["caption"] or None, width="content")
    else:
        p = pictures[0]
        st.image(view.render(thumbs[0], revealed=session.is_revealed(p.key), boxes=p.boxes,
                             colours=p.colours, labels=p.labels),
                 caption=spec["caption"] or None, width="content")
    hidden = [p for p in pictures if not session.is_revealed(p.key)]
    cols = st.columns(len(hidden) + 1)
    for i, (col, p) in enumerate(zip(cols, hidden, strict=False)):
        text = "Reveal" if len(pictures) == 1 else f"Reveal {p.name}"
        if can(user.role, "reveal") and col.button(text, key=f"zoom_reveal_{spec['id']}_{i}",
                                                   help="Show it in colour, unblurred (logged)"):
            session.reveal(user, p.key, p.sha256, {**spec["detail"], "view": "zoom"})
            st.rerun()  # the whole page: the grid cell behind the dialog is revealed too
    if cols[-1].button("Close", key=f"zoom_close_{spec['id']}"):
        _close()
        st.rerun()
