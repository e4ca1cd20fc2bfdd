"""Single-key shortcuts for the review page: c confirm, r reject, s skip, v reveal both, n next.

How it works: ``install()`` puts a 1-pixel ``st.iframe`` (``components.html`` on older Streamlit) on the
page. Streamlit gives that iframe the app's own origin, so its script may reach ``window.parent.document``
and listen for key presses there. A key clicks the Streamlit button whose ``key`` it maps to:
Streamlit gives each keyed widget's container the class ``st-key-<key>``, so the button is found
as ``.st-key-<key> button``. Nothing else happens in the browser: the click is an ordinary button
click, and every rule (permission, reveal-both, overrule) is checked on the server as for a mouse.

Keys are ignored while the focus is in a text field (typing a reason must not decide anything),
with Ctrl/Alt/Meta held, and for a disabled or absent button. The listener is replaced, not
added again, on every rerun (it is kept on the parent document as ``__vpKeys``).
"""

from __future__ import annotations

import json

# key pressed -> Streamlit widget key of the button it clicks (the review page uses these keys)
KEYMAP: dict[str, str] = {"c": "kb_confirm", "r": "kb_reject", "s": "kb_skip", "v": "kb_reveal", "n": "kb_next"}
HELP = "Keys: **c** confirm · **r** reject · **s** skip · **v** reveal both · **n** next (not while typing)"

_SNIPPET = """<script>
const doc = window.parent.document, map = %s;
if (doc.__vpKeys) doc.removeEventListener("keydown", doc.__vpKeys);
doc.__vpKeys = (e) => {
  const t = e.target, tag = (t && t.tagName || "").toLowerCase();
  if (e.ctrlKey || e.metaKey || e.altKey || ["input", "textarea", "select"].includes(tag)
      || (t && t.isContentEditable)) return;
  const key = map[(e.key || "").toLowerCase()];
  const b = key && doc.querySelector(".st-key-" + key + " button");
  if (b && !b.disabled) { e.preventDefault(); b.click(); }
};
doc.addEventListener("keydown", doc.__vpKeys);
</script>"""


def snippet(keymap: dict[str, str] | None = None) -> str:
    """The HTML/JS that maps keys to buttons (``keymap`` defaults to ``KEYMAP``)."""
    return _SNIPPET % json.dumps(keymap or KEYMAP, sort_keys=True)


def install(keymap: dict[str, str] | None = None) -> None:
    """Put the key listener on the current page (a 1-pixel, same-origin iframe).

    ``st.iframe`` (Streamlit >= 1.5x) replaces the deprecated ``components.v1.html``; both give
    an HTML string a same-origin iframe whose script may reach the parent document.
    """
    import streamlit as st

    if hasattr(st, "iframe"):
        st.iframe(snippet(keymap), height=1)
    else:  # older Streamlit
        import streamlit.components.v1 as components

        components.html(snippet(keymap), height=0)
