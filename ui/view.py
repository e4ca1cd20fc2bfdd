"""Showing thumbnails the wellness way: greyscale and blurred until revealed, boxes drawn on top.

Blurring happens here, on the server, before any pixel is sent: the browser of a reviewer who
has not revealed an image never receives its clear version.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import streamlit as st
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from ui import session
from ui.auth import Prefs, User, can
from ui.thumbs import Thumb, ThumbRequest

# Default blur radius as a share of the width (16 px on a 320 px thumbnail): shapes stay, faces go.
# Each user may choose another (Settings page); the measurements behind it: ui/auth.py, Prefs.
BLUR_SHARE = Prefs.blur_share
BOX_COLOURS = ("#ff3b30", "#34c759", "#0a84ff", "#ffcc00")
# Query faces of a multi-face search: (Streamlit markdown colour name, the same colour as RGB hex),
# so the box on the picture and the ":colour[...]" tag in a caption look alike.
FACE_COLOURS = (("red", "#ff2b2b"), ("blue", "#1c83e1"), ("green", "#21c354"), ("orange", "#ffa421"),
                ("violet", "#803df5"), ("gray", "#808495"))


def face_label(index: int) -> str:
    """The label of query face ``index`` (A, B, ..., then A2, B2, ...)."""
    return chr(ord("A") + index % 26) + (str(index // 26 + 1) if index >= 26 else "")


def face_colour(index: int) -> tuple[str, str]:
    """(markdown colour name, hex) of query face ``index``."""
    return FACE_COLOURS[index % len(FACE_COLOURS)]


def face_tag(index: int | None) -> str:
    """Markdown naming query face ``index`` in its colour, e.g. ``:red[■ face A]``."""
    if index is None:
        return ""
    return f":{face_colour(index)[0]}[■ face {face_label(index)}]"

Box = Sequence[float]
# Characters with a meaning in Streamlit markdown (CommonMark punctuation, directives like
# :red[...] and :material/...:, LaTeX $). File names and EXIF come from evidence: escaped, a
# name like "![x](http://host/p.png)" stays text and never makes the browser fetch anything.
_MARKDOWN_SPECIAL = set("\\`*_{}[]<>()#+-.!|~$:&=\"'")


def esc(text: object) -> str:
    """``text`` escaped for st.markdown / st.caption / st.error, on one line."""
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in " ".join(str(text).split()))


def render(thumb: Thumb, *, revealed: bool, boxes: Sequence[Box] = (), highlight: int | None = None,
           colours: Sequence[str] | None = None, labels: Sequence[str] | None = None,
           blur_share: float | None = None) -> bytes:
    """JPEG bytes of ``thumb``: blurred greyscale unless ``revealed``; face boxes scaled and drawn.

    The blur radius is ``blur_share`` of the width; by default the logged-in user's setting
    (``BLUR_SHARE`` outside a page run or when logged out).
    """
    with Image.open(thumb.path, formats=["JPEG"]) as src:  # our own re-encoded thumbnail
        img = src.convert("RGB")
    if not revealed:
        radius = max(2.0, (user_blur_share() if blur_share is None else blur_share) * img.width)
        img = ImageOps.grayscale(img).filter(ImageFilter.GaussianBlur(radius)).convert("RGB")
    if boxes and thumb.src_w and thumb.src_h:
        sx, sy = img.width / thumb.src_w, img.height / thumb.src_h
        draw = ImageDraw.Draw(img)
        for i, box in enumerate(boxes):
            x1, y1, x2, y2 = (float(v) for v in box[:4])
            colour = BOX_COLOURS[0] if highlight is None or i == highlight else BOX_COLOURS[2]
            if colours:
                colour = colours[i % len(colours)]
            draw.rectangle([x1 * sx, y1 * sy, x2 * sx, y2 * sy], outline=colour,
                           width=3 if i == highlight else 2)
            if labels and i < len(labels) and labels[i]:
                _label(draw, labels[i], x1 * sx, y1 * sy, colour)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def user_blur_share() -> float:
    """The logged-in user's blur strength, or ``BLUR_SHARE`` outside a logged-in page run."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx() is None:
        return BLUR_SHARE
    return session.prefs().blur_share


def _label(draw: ImageDraw.ImageDraw, text: str, x: float, y: float, colour: str) -> None:
    """A small filled tag with ``text`` at the top-left corner of a box."""
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 6, bottom - top + 4
    y0 = y - h if y >= h else y
    draw.rectangle([x, y0, x + w, y0 + h], fill=colour)
    draw.text((x + 3 - left, y0 + 2 - top), text, fill="white", font=font)


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
         slot: str = "", colours: Sequence[str] | None = None, labels: Sequence[str] | None = None,
         zoom: ThumbRequest | None = None, tile: tuple[int, int] | None = None) -> None:
    """One image cell with its Reveal button; a missing thumbnail shows why instead.

    ``key`` names the thumbnail (revealing it reveals it wherever it is shown); ``slot`` tells
    apart two cells that show the same thumbnail on one page. ``zoom`` (the thumbnail's request)
    adds a Zoom button that opens a bigger version in a dialog (ui/zoom.py); ``tile`` (w, h)
    letterboxes the picture into a fixed frame, so the cells of a grid row line up.
    """
    if thumb is None:
        st.info("No preview (not decodable as an image).")
        return
    revealed = session.is_revealed(key)
    picture = render(thumb, revealed=revealed, boxes=boxes, highlight=highlight, colours=colours, labels=labels,
                     blur_share=session.prefs().blur_share)
    st.image(fit_tile(picture, tile) if tile else picture, caption=caption or None)
    left, right = st.columns(2) if zoom is not None else (st, None)  # Reveal | Zoom on one line
    if not revealed and can(user.role, "reveal"):
        if left.button("Reveal", key=f"reveal_{slot}_{key}", help="Show this image in colour, unblurred (logged)"):
            session.reveal(user, key, sha256, detail)
            st.rerun()
    if zoom is not None:
        from ui import zoom as zoom_dialog  # ui.zoom draws with this module's render()

        with right:
            zoom_dialog.button(user, zoom_dialog.Picture(zoom, key, sha256, boxes=tuple(boxes),
                                                         colours=tuple(colours) if colours else None,
                                                         labels=tuple(labels) if labels else None),
                               slot=slot, caption=caption, detail=detail)


TILE = (320, 240)  # grid cells: every picture letterboxed into one 4:3 frame


def fit_tile(jpeg: bytes, tile: tuple[int, int]) -> bytes:
    """``jpeg`` scaled to fit ``tile`` (w, h) and centred on a light frame of exactly that size."""
    with Image.open(io.BytesIO(jpeg)) as src:
        framed = ImageOps.pad(src.convert("RGB"), tile, color="#f0f2f6")
    buf = io.BytesIO()
    framed.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def exposure_sidebar() -> None:
    """The per-session exposure counter, with a break reminder as the user's settings ask."""
    n = session.exposure_count()
    st.sidebar.metric("Images revealed this session", n)
    reminder = session.break_reminder()
    if reminder:
        st.sidebar.warning(reminder)
        if st.sidebar.button("I took a break", key="break_taken"):
            session.break_taken()
            st.rerun()
