"""Media detail: every path, the hashes, EXIF and GPS (on an offline map), faces, and earlier decisions
for one item; its pictures open bigger on demand (Zoom), blurred until revealed."""

from __future__ import annotations

import json

import streamlit as st

from ui import charts, session, view
from ui.decisions import decisions_for_media
from ui.thumbs import ensure_thumbs, request_for_media
from vidpipe.store.queries.media import faces_of_media, find_media, keyframes, path_statuses, signals_of

user = session.require("view")
conn = session.conn()
st.title("Media detail")

default = st.session_state.get("_vp_detail_sha", "")
typed = st.text_input("SHA-256, MD5 or SHA-1 of the item", value=default, key="media_lookup").strip().lower()
if not typed:
    st.info("Enter a hash, or open an item from the search results.")
    st.stop()
media = find_media(conn, typed)
if media is None:
    st.warning("No media item with that hash in this case.")
    st.stop()
sha = media["sha256"]

faces = faces_of_media(conn, sha)
image_faces = [(f["x1"], f["y1"], f["x2"], f["y2"]) for f in faces if f["video_time_s"] is None]
req = request_for_media(conn, sha, 0.0 if media["kind"] == "video" else None)
thumbs = ensure_thumbs(session.case_paths().thumbs, [req]) if req else {}

left, right = st.columns([1, 2])
with left:
    view.show(user, thumbs.get(req.key) if req else None, key=req.key if req else sha, sha256=sha,
              boxes=image_faces, caption=f"{media['label']} · {media['width']}×{media['height']}", slot="detail",
              zoom=req)
with right:
    st.markdown(f"**Status:** {view.esc(media['status'])}" + (f" ({view.esc(media['reason'])})" if media["reason"] else ""))
    st.markdown(f"**Type:** {view.esc(media['mime'])} ({view.esc(media['kind'])}) · **Size:** {media['size']:,} bytes")
    st.markdown("**Hashes**")
    signals = signals_of(conn, sha)
    lines = [f"SHA-256  {sha}", f"SHA-1    {media['sha1']}", f"MD5      {media['md5']}"]
    lines += [f"{name:<8} {value}" + (f"  (quality {quality})" if quality is not None else "")
              for name, (value, quality) in sorted(signals.items())]
    st.code("\n".join(lines), language=None)

st.subheader("Paths")
paths = path_statuses(conn, sha)
st.dataframe(paths, hide_index=True, width="stretch")

exif = json.loads(media["exif"]) if media["exif"] else None
st.subheader("EXIF and GPS")
if not exif:
    st.write("No EXIF.")
else:
    gps = exif.get("gps") or {}
    if gps.get("lat") is not None:
        st.markdown(f"**GPS:** {gps['lat']:.6f}, {gps['lon']:.6f}"
                    + (f", altitude {gps['alt']} m" if gps.get("alt") is not None else ""))
        # A scatter over the bundled outline: no map tiles, nothing fetched from the internet.
        charts.show(charts.gps_map_chart([{"lat": gps["lat"], "lon": gps["lon"], "label": media["label"]}]),
                    width="content")
    st.code(json.dumps(exif, indent=2, ensure_ascii=False), language="json")

if media["kind"] == "video":
    # The keyframe strip: one blurred cell per keyframe (shot starts and interval frames), at most 12.
    frames = keyframes(conn, sha, limit=12)
    st.subheader(f"Keyframes ({len(frames)} shown)")
    if frames:
        requests = [request_for_media(conn, sha, round(f["time_s"], 3)) for f in frames]
        strip = ensure_thumbs(session.case_paths().thumbs, [r for r in requests if r])
        for column, frame, req in zip(st.columns(min(len(frames), 6)) * 2, frames, requests):
            with column:
                view.show(user, strip.get(req.key) if req else None, key=req.key if req else f"{sha}@{frame['time_s']}",
                          sha256=sha, caption=f"{frame['time_s']:.2f} s · shot {frame['shot_id']}", slot="strip",
                          zoom=req, tile=view.TILE)

st.subheader(f"Faces ({len(faces)})")
if faces:
    st.dataframe(faces, hide_index=True, width="stretch")
earlier = decisions_for_media(conn, sha)
if earlier:
    st.subheader("Decisions")
    st.dataframe(earlier, hide_index=True, width="stretch")
