"""Showing thumbnails the wellness way: greyscale and blurred until revealed, boxes drawn on top.

Blurring happens here, on the server, before any pixel is sent: the browser of a reviewer who
has not revealed an image never receives its clear version.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import streamlit as st
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from ui import session
from ui.auth import User, can
from ui.thumbs import Thumb

BLUR_SHARE = 0.03  # blur radius as a share of the width (10 px on a 320 px thumbnail): shapes stay, detail goes
BOX_COLOURS = ("#ff3b30", "#34c759", "#0a84ff", "#ffcc00")

Box = Sequence[float]
# Characters with a meaning in Streamlit markdown (CommonMark punctuation, directives like
# :red[...] and :material/...:, LaTeX $). File names and EXIF come from evidence: escaped, a
# name like "![x](http://host/p.png)" stays text and never makes the browser fetch anything.
_MARKDOWN_SPECIAL = set("\\`*_{}[]<>()#+-.!|~$:&=\"'")


def esc(text: object) -> str:
    """``text`` escaped for st.markdown / st.caption / st.error, on one line."""
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in " ".join(str(text).split()))


def render(thumb: Thumb, *, revealed: bool, boxes: Sequence[Box] = (), highlight: int | None = None) -> bytes:
    """JPEG bytes of ``thumb``: blurred greyscale unless ``revealed``; face boxes scaled and drawn."""
    with Image.open(thumb.path, formats=["JPEG"]) as src:  # our own re-encoded thumbnail
        img = src.convert("RGB")
    if not revealed:
        radius = max(2.0, BLUR_SHARE * img.width)
        img = ImageOps.grayscale(img).filter(ImageFilter.GaussianBlur(radius)).convert("RGB")
    if boxes and thumb.src_w and thumb.src_h:
        sx, sy = img.width / thumb.src_w, img.height / thumb.src_h
        draw = ImageDraw.Draw(img)
        for i, box in enumerate(boxes):
            x1, y1, x2, y2 = (float(v) for v in box[:4])
            colour = BOX_COLOURS[0] if highlight is None or i == highlight else BOX_COLOURS[2]
            draw.rectangle([x1 * sx, y1 * sy, x2 * sx, y2 * sy], outline=colour,
                           width=3 if i == highlight else 2)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


MATCH_COLOURS = ("#ffcc00", "#34c759", "#0a84ff", "#ff9f0a", "#bf5af2")


def render_matches(left: Thumb, right: Thumb, matches: Sequence[Sequence[float]], *, left_revealed: bool,
                   right_revealed: bool, max_lines: int = 40) -> bytes:
    """Side-by-side JPEG of two thumbnails (each blurred unless revealed) with matched room points
    joined by lines: ``matches`` rows are (x_left, y_left, x_right, y_right) in source pixels."""
    a = Image.open(io.BytesIO(render(left, revealed=left_revealed)))
    b = Image.open(io.BytesIO(render(right, revealed=right_revealed)))
    gap = 8
    canvas = Image.new("RGB", (a.width + gap + b.width, max(a.height, b.height)), "white")
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + gap, 0))
    draw = ImageDraw.Draw(canvas)
    sa = (a.width / left.src_w, a.height / left.src_h) if left.src_w and left.src_h else (0, 0)
    sb = (b.width / right.src_w, b.height / right.src_h) if right.src_w and right.src_h else (0, 0)
    step = max(1, len(matches) // max_lines)
    for i, m in enumerate(list(matches)[::step][:max_lines]):
        xa, ya = m[0] * sa[0], m[1] * sa[1]
        xb, yb = a.width + gap + m[2] * sb[0], m[3] * sb[1]
        colour = MATCH_COLOURS[i % len(MATCH_COLOURS)]
        draw.line([xa, ya, xb, yb], fill=colour, width=1)
        for x, y in ((xa, ya), (xb, yb)):
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], outline=colour, width=2)
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def show(user: User, thumb: Thumb | None, *, key: str, sha256: str, caption: str = "",
         boxes: Sequence[Box] = (), highlight: int | None = None, detail: dict | None = None,
         slot: str = "") -> None:
    """One image cell with its Reveal button; a missing thumbnail shows why instead.

    ``key`` names the thumbnail (revealing it reveals it wherever it is shown); ``slot`` tells
    apart two cells that show the same thumbnail on one page.
    """
    if thumb is None:
        st.info("No preview (not decodable as an image).")
        return
    revealed = session.is_revealed(key)
    st.image(render(thumb, revealed=revealed, boxes=boxes, highlight=highlight), caption=caption or None)
    if not revealed and can(user.role, "reveal"):
        if st.button("Reveal", key=f"reveal_{slot}_{key}", help="Show this image in colour, unblurred (logged)"):
            session.reveal(user, key, sha256, detail)
            st.rerun()


def exposure_sidebar() -> None:
    """The per-session exposure counter, with a reminder every few reveals."""
    n = session.exposure_count()
    st.sidebar.metric("Images revealed this session", n)
    if n and n % session.EXPOSURE_WARN_EVERY == 0:
        st.sidebar.warning("You have revealed many images. Consider a short break.")
