"""Known-hash hits: which files matched which imported list, how, and how closely.

Text only (paths, lists, categories, distances): nothing here shows an image, so reviewing the
list costs no exposure; open an item in Media detail to see it.
"""

from __future__ import annotations

import streamlit as st

from ui import session
from ui.view import esc
from vidpipe.store.queries.hits import hash_lists, positive_hits, suppressed_hit_count

user = session.require("view")
conn = session.conn()
st.title("Known-hash hits")

lists = hash_lists(conn)
if not lists:
    st.info("No hash list imported in this case (vidpipe hashlist import FILE --case DIR).")
    st.stop()
st.table([{"list": r["name"], "kind": "negative (known false positives)" if r["negative"] else "positive",
           "entries": r["entries"], "imported (UTC)": r["imported_utc"][:19].replace("T", " ")} for r in lists])

rows = positive_hits(conn)
suppressed = suppressed_hit_count(conn)
st.subheader(f"{len(rows)} hits" + (f" ({suppressed} suppressed by a negative list)" if suppressed else ""))
st.caption("Exact hits (md5, sha1, sha256) are identical files; PDQ hits are visually similar at Hamming "
           "distance ≤ 31 of 256 bits (Meta's threshold) and are candidates for a reviewer, not findings.")
if rows:
    st.table([{"file": esc(r["path"]), "list": r["list"], "category": r["category"], "match": r["match"],
               "distance": r["distance"], "sha256": r["sha256"][:16] + "…"} for r in rows])
