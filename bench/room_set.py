"""Rendered hotel-room evaluation set: room-level and hotel-level identity, wide-baseline views.

    python -m bench.room_set [--out DIR] [--quick] [--hotels N --rooms R --views V] [--seed S]

Why: ../shared/data/scenes has no two photos of one room and no two rooms of one hotel, so neither
"same room" nor "same hotel, other room" can be measured there. This generator renders them.

What it renders (numpy + OpenCV only, deterministic for a seed and library versions):
- a *hotel* is a décor set shared by all its rooms: wallpaper, accent wall behind the bed,
  carpet, bedspread, headboard, lamp (colours and shape), framed art, furniture wood, curtains;
- a *room* of that hotel has its own layout and details: size, bed position, desk side, window wall
  and the view through it, door position and number plate, a second picture, scuffs on the walls;
- a *view* is a pinhole camera inside the room (position, yaw -70..70 deg around the bed wall or a
  side view of +-90 deg, pitch, horizontal FOV 50-85 deg) that sees 15-80 % of what the reference
  view sees (`view_overlap`, 3-D co-visibility through an id buffer; redrawn up to 12 times
  otherwise: rooms-v1 had 6/72 views sharing < 5 % with every other view of their room and 14
  near-copies of the reference, > 90 %), with its own lighting (day or
  lamp-lit night: gain, colour temperature, gamma, lamp glow), moved furniture (chair, suitcase,
  armchair) and, in some views, a person pasted in front (face box recorded, as ingest would have it).
  View 0 of each room is the clean reference (no person, default furniture, daylight).
Geometry: every surface is a textured rectangle in 3-D (room shell, boxes for bed, nightstands,
lamps, desk, chair...), clipped at the near plane and drawn back to front (painter's algorithm;
the shell first, then wall decorations, then furniture by distance), rendered at 2x and reduced.

Output (outside the repository; default ~/.cache/vidpipe-eval/<SET_VERSION>[-quick]):
`labels.csv` (file, hotel_id, room_id, view, person, face box, camera, lighting, moved, covis_ref),
`MANIFEST.md` (parameters and licences), `images/*.jpg`. `ensure_set` reuses a directory whose
manifest matches the parameters, so the bench renders once.

Licences: procedural textures are generated here (no licence needed). Art, window views and the
pasted person come from scikit-image's bundled sample images, all public domain or CC0 (see
`LICENCES`); scikit-image itself is BSD-3-Clause and a dev dependency.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SET_VERSION = "rooms-v2"  # v2: co-visibility with the reference view bounded (OVERLAP_RANGE)
SEED = 20261204
IMAGE_SIZE = (640, 480)  # w, h of the saved views (a phone photo reduced for the index)
SUPERSAMPLE = 2  # render at 2x, reduce with INTER_AREA: no stair-step edges for the CNN to key on
PX_PER_M = 110  # texture resolution on surfaces
JPEG_QUALITY = 90
FULL = dict(n_hotels=6, rooms_per_hotel=3, views_per_room=4)  # 72 images, 18 rooms
QUICK = dict(n_hotels=4, rooms_per_hotel=2, views_per_room=3)  # 24 images, 8 rooms
PERSON_SHARE = 0.35  # share of non-reference views with a person pasted in
DEFAULT_ROOT = Path.home() / ".cache" / "vidpipe-eval"

# Source and licence of every bundled image used (scikit-image docstrings, version 0.26).
LICENCES = {
    "astronaut": "NASA, public domain (person texture)",
    "coffee": "Rachel Michetti, CC0",
    "chelsea": "Stefan van der Walt, CC0",
    "rocket": "SpaceX, public domain",
    "hubble_deep_field": "NASA, public domain",
    "horse": "Andreas Preuss, CC0",
    "camera": "Lav Varshney, CC0",
    "grass": "CC0Textures, CC0",
    "gravel": "CC0Textures, CC0",
    "brick": "CC0Textures, CC0",
}
ART_IMAGES = ("coffee", "chelsea", "rocket", "hubble_deep_field", "horse", "camera")


# --------------------------------------------------------------------------- textures
@functools.cache
def _sk_cached(name: str) -> np.ndarray:
    import skimage.data

    im = getattr(skimage.data, name)()
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    out = np.ascontiguousarray(im[..., :3]).astype(np.uint8)
    out.flags.writeable = False
    return out


def _sk(name: str) -> np.ndarray:
    """A bundled scikit-image sample as RGB uint8 (a private copy; decoded once per process)."""
    return _sk_cached(name).copy()


def _fit(tex: np.ndarray, w: int, h: int) -> np.ndarray:
    """Tile (not stretch) a texture to w x h so patterns keep their physical size."""
    reps = (h // tex.shape[0] + 1, w // tex.shape[1] + 1, 1)
    return np.tile(tex, reps)[:h, :w].copy()


def _noise(rng: np.random.Generator, w: int, h: int, base, amp: float, blur: float) -> np.ndarray:
    import cv2

    n = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), blur)
    n /= n.std() + 1e-6
    return (np.array(base, np.float32) + amp * n[..., None]).clip(0, 255).astype(np.uint8)


def _pattern(kind: str, rng: np.random.Generator, w: int, h: int, c1, c2, c3, scale: float = 1.0) -> np.ndarray:
    """Repeating fabric/wallpaper/carpet patterns, all procedural."""
    import cv2

    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / scale
    if kind == "plaid":
        a = ((x // 18) % 3 == 0).astype(np.float32)
        b = ((y // 18) % 3 == 0).astype(np.float32)
        thin = (((x.astype(int) % 54) == 40) | ((y.astype(int) % 54) == 40)).astype(np.float32)[..., None]
        m = (0.5 * (a + b))[..., None]
        img = np.array(c1, np.float32) * (1 - m) + np.array(c2, np.float32) * m
        img = img * (1 - thin) + np.array(c3, np.float32) * thin
    elif kind == "chevron":
        band = ((y + np.abs((x % 40) - 20)) // 14) % 2
        img = np.where(band[..., None] == 0, np.array(c1, np.float32), np.array(c2, np.float32))
    elif kind == "stripes":
        s = (x % 36)
        img = np.where(((s < 10) | ((s >= 14) & (s < 16)))[..., None], np.array(c2, np.float32), np.array(c1, np.float32))
    elif kind == "damask":
        t = np.full((48, 40, 3), c1, np.uint8)
        cv2.polylines(t, [np.array([[20, 0], [40, 24], [20, 48], [0, 24]])], True, tuple(int(v) for v in c2), 2, cv2.LINE_AA)
        cv2.circle(t, (20, 24), 4, tuple(int(v) for v in c2), -1, cv2.LINE_AA)
        t = cv2.resize(t, (max(8, int(40 * scale)), max(8, int(48 * scale))))
        return _fit(t, w, h)
    elif kind == "dots":
        d = ((x % 30 - 15) ** 2 + (y % 30 - 15) ** 2) < 25
        img = np.where(d[..., None], np.array(c2, np.float32), np.array(c1, np.float32))
    elif kind == "waves":
        v = np.sin(x * 0.12 + 2.5 * np.sin(y * 0.05))
        img = np.where((v > 0.6)[..., None], np.array(c2, np.float32), np.array(c1, np.float32))
    elif kind == "diamond":
        v = (np.abs(x % 60 - 30) + np.abs(y % 60 - 30)) < 22
        img = np.where(v[..., None], np.array(c2, np.float32), np.array(c1, np.float32))
        img[((np.abs(x % 60 - 30) + np.abs(y % 60 - 30)) < 6)] = c3
    else:  # plain
        img = np.zeros((h, w, 3), np.float32) + np.array(c1, np.float32)
    img = img + rng.normal(0, 3, img.shape)  # weave / print noise
    return img.clip(0, 255).astype(np.uint8)


def _wood(rng: np.random.Generator, w: int, h: int, base) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    grain = np.sin(y * 0.45 + 3 * np.sin(x * 0.02 + rng.uniform(0, 6))) * 0.5 + 0.5
    img = np.array(base, np.float32) * (0.75 + 0.25 * grain[..., None])
    return (img + rng.normal(0, 4, img.shape)).clip(0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator, lo: int = 30, hi: int = 230) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _framed(img: np.ndarray, w: int, h: int, frame, border: int = 10) -> np.ndarray:
    import cv2

    out = np.empty((h, w, 3), np.uint8)
    out[:] = frame
    out[border:h - border, border:w - border] = cv2.resize(img, (w - 2 * border, h - 2 * border), interpolation=cv2.INTER_AREA)
    return out


def _skyline(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """The view through a window: sky gradient, a row of buildings with lit windows (per room)."""
    import cv2

    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top, bottom = np.array(_colour(rng, 60, 200), np.float32), np.array([200, 220, 240], np.float32)
    img = np.repeat((1 - t) * top + t * bottom, w, axis=1)
    x = 0
    while x < w:
        bw, bh = int(rng.integers(w // 10, w // 4)), int(rng.integers(h // 5, int(h * 0.8)))
        col = _colour(rng, 40, 180)
        cv2.rectangle(img, (x, h - bh), (x + bw, h), col, -1)
        for wy in range(h - bh + 6, h - 6, 12):
            for wx in range(x + 4, x + bw - 6, 10):
                if rng.random() < 0.5:
                    cv2.rectangle(img, (wx, wy), (wx + 4, wy + 6), (235, 225, 160), -1)
        x += bw + int(rng.integers(0, w // 12))
    return img.clip(0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- scene description
@dataclass
class Quad:
    """A textured rectangle: point(u, v) = origin + u*U + v*V, u, v in [0, 1]; texture x ~ u, y ~ v.

    normal: the side it is seen from (None: both); group: draw order layer; key: depth for sorting."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    tex: np.ndarray
    normal: np.ndarray | None = None
    layer: int = 2
    depth_key: np.ndarray | None = None


def _q(o, u, v, tex, normal=None, layer=2, key=None) -> Quad:
    f = lambda a: np.asarray(a, np.float64)  # noqa: E731
    return Quad(f(o), f(u), f(v), tex, None if normal is None else f(normal), layer, None if key is None else f(key))


def _tex_for(tex: np.ndarray, w_m: float, h_m: float, tile: bool = True) -> np.ndarray:
    """A texture sized to a surface of w_m x h_m metres (tiled at PX_PER_M, or stretched)."""
    import cv2

    w, h = max(4, int(w_m * PX_PER_M)), max(4, int(h_m * PX_PER_M))
    return _fit(tex, w, h) if tile else cv2.resize(tex, (w, h), interpolation=cv2.INTER_AREA)


def box(x0, y0, z0, sx, sy, sz, tex_top, tex_side, tex_front=None, shade_sides: bool = True) -> list[Quad]:
    """An axis-aligned box (x right, y up, z into the room) as 5 visible-side quads (no bottom)."""
    tex_front = tex_side if tex_front is None else tex_front
    c = np.array([x0 + sx / 2, y0 + sy / 2, z0 + sz / 2])
    P = lambda x, y, z: np.array([x, y, z], np.float64)  # noqa: E731
    out = [
        _q(P(x0, y0 + sy, z0), P(sx, 0, 0), P(0, 0, sz), _tex_for(tex_top, sx, sz), (0, 1, 0), key=c),  # top
        _q(P(x0, y0 + sy, z0), P(sx, 0, 0), P(0, -sy, 0), _tex_for(tex_front, sx, sy), (0, 0, -1), key=c),  # front (z0)
        _q(P(x0 + sx, y0 + sy, z0 + sz), P(-sx, 0, 0), P(0, -sy, 0), _tex_for(tex_side, sx, sy), (0, 0, 1), key=c),
        _q(P(x0, y0 + sy, z0 + sz), P(0, 0, -sz), P(0, -sy, 0), _tex_for(tex_side, sz, sy), (-1, 0, 0), key=c),
        _q(P(x0 + sx, y0 + sy, z0), P(0, 0, sz), P(0, -sy, 0), _tex_for(tex_side, sz, sy), (1, 0, 0), key=c),
    ]
    return out


@dataclass
class Hotel:
    """The décor shared by every room of one hotel."""

    hotel_id: str
    wallpaper: np.ndarray
    accent: np.ndarray
    carpet: np.ndarray
    bedspread: np.ndarray
    headboard: np.ndarray
    wood: np.ndarray
    lamp_base: tuple
    lamp_shade: np.ndarray
    lamp_dims: tuple  # base height, shade width, shade height
    art: np.ndarray
    curtain: np.ndarray
    chair: np.ndarray
    decor: dict = field(default_factory=dict)  # what was chosen, for labels/manifest


def make_hotel(seed: int, h: int) -> Hotel:
    rng = np.random.default_rng([seed, h, 1])
    kinds = ["plaid", "chevron", "stripes", "damask", "dots", "waves", "diamond"]
    wall_kind = str(rng.choice(["damask", "stripes", "plain", "waves", "dots"]))
    spread_kind = str(rng.choice(kinds))
    carpet_kind = str(rng.choice(["plain", "diamond", "dots", "chevron", "gravel"]))
    accent_kind = str(rng.choice(["brick", "plain", "waves", "diamond", "stripes"]))
    art_name = ART_IMAGES[h % len(ART_IMAGES)] if h < len(ART_IMAGES) else str(rng.choice(ART_IMAGES))
    light = lambda: _colour(rng, 150, 245)  # noqa: E731
    dark = lambda: _colour(rng, 20, 140)  # noqa: E731
    wallpaper = _pattern(wall_kind, rng, 400, 400, light(), dark(), dark(), scale=rng.uniform(0.8, 1.4))
    if accent_kind == "brick":
        accent = _sk("brick")
        accent = (accent.astype(np.float32) * np.array(_colour(rng, 120, 255), np.float32) / 200).clip(0, 255).astype(np.uint8)
    else:
        accent = _pattern(accent_kind, rng, 400, 400, dark(), light(), light(), scale=rng.uniform(0.8, 1.5))
    if carpet_kind == "gravel":
        g = _sk("gravel")
        carpet = (g.astype(np.float32) / 255 * np.array(dark(), np.float32) * 1.6).clip(0, 255).astype(np.uint8)
    else:
        carpet = _pattern(carpet_kind, rng, 400, 400, dark(), light(), dark(), scale=rng.uniform(0.8, 1.6))
        carpet = (carpet.astype(np.float32) + _noise(rng, 400, 400, (0, 0, 0), 8, 1.0)).clip(0, 255).astype(np.uint8)
    bedspread = _pattern(spread_kind, rng, 400, 400, light(), dark(), dark(), scale=rng.uniform(0.7, 1.3))
    headboard = _wood(rng, 300, 200, _colour(rng, 60, 160)) if rng.random() < 0.5 else \
        _noise(rng, 300, 200, dark(), 6, 2)
    wood = _wood(rng, 300, 300, _colour(rng, 60, 170))
    shade_col = light()
    lamp_shade = _noise(rng, 100, 100, shade_col, 4, 2)
    lamp_dims = (float(rng.uniform(0.15, 0.4)), float(rng.uniform(0.18, 0.38)), float(rng.uniform(0.15, 0.3)))
    art = _sk(art_name)
    curtain = _pattern(str(rng.choice(["stripes", "plain", "waves"])), rng, 200, 400, light(), dark(), dark())
    chair = _noise(rng, 100, 100, dark(), 8, 1.5)
    decor = {"wallpaper": wall_kind, "accent": accent_kind, "carpet": carpet_kind, "bedspread": spread_kind,
             "art": art_name, "lamp_shade": shade_col, "lamp_dims": [round(v, 3) for v in lamp_dims]}
    return Hotel(f"hotel{h:02d}", wallpaper, accent, carpet, bedspread, headboard, wood, _colour(rng, 30, 220),
                 lamp_shade, lamp_dims, art, curtain, chair, decor)


@dataclass
class Room:
    """One room of a hotel: the static geometry plus where the movable furniture stands by default."""

    room_id: str
    size: tuple  # W, H, D metres
    static: list  # quads
    lamps: list  # 3-D lamp-shade centres (night glow)
    movable: dict  # name -> (tex_top, tex_side, dims, default x, z)
    layout: dict


def make_room(seed: int, hotel: Hotel, h: int, r: int) -> Room:
    import cv2

    rng = np.random.default_rng([seed, h, r, 2])
    W, H, D = float(rng.uniform(3.3, 4.3)), float(rng.uniform(2.5, 2.75)), float(rng.uniform(4.2, 5.6))
    q: list[Quad] = []
    P = lambda x, y, z: np.array([x, y, z], np.float64)  # noqa: E731
    # Shell, seen from inside (normals point into the room).
    wallp = hotel.wallpaper.copy()
    for _ in range(int(rng.integers(1, 4))):  # room-specific scuffs and marks
        x, y = int(rng.integers(0, 380)), int(rng.integers(200, 390))
        cv2.ellipse(wallp, (x, y), (int(rng.integers(3, 12)), int(rng.integers(2, 6))), float(rng.uniform(0, 180)),
                    0, 360, (90, 80, 70), -1, cv2.LINE_AA)
    q.append(_q(P(0, 0, D), P(W, 0, 0), P(0, 0, -D), _tex_for(hotel.carpet, W, D), (0, 1, 0), layer=0))
    ceil = _noise(rng, 200, 200, (238, 236, 230), 3, 4)
    q.append(_q(P(0, H, 0), P(W, 0, 0), P(0, 0, D), _tex_for(ceil, W, D), (0, -1, 0), layer=0))
    q.append(_q(P(0, H, D), P(W, 0, 0), P(0, -H, 0), _tex_for(hotel.accent, W, H), (0, 0, -1), layer=0))  # bed wall
    q.append(_q(P(W, H, 0), P(-W, 0, 0), P(0, -H, 0), _tex_for(wallp, W, H), (0, 0, 1), layer=0))  # door wall
    q.append(_q(P(0, H, 0), P(0, 0, D), P(0, -H, 0), _tex_for(wallp, D, H), (1, 0, 0), layer=0))  # left
    q.append(_q(P(W, H, D), P(0, 0, -D), P(0, -H, 0), _tex_for(wallp, D, H), (-1, 0, 0), layer=0))  # right
    skirting = np.full((20, 200, 3), (235, 232, 225), np.uint8)
    for o, u, n in ((P(0, 0.1, D - 0.001), P(W, 0, 0), (0, 0, -1)), (P(0.001, 0.1, 0), P(0, 0, D), (1, 0, 0)),
                    (P(W - 0.001, 0.1, D), P(0, 0, -D), (-1, 0, 0))):
        q.append(_q(o, u, P(0, -0.1, 0), _tex_for(skirting, float(np.linalg.norm(u)), 0.1, tile=True), n, layer=1))
    # Bed against the bed wall, position per room; desk side opposite the window.
    bw, bl = float(rng.uniform(1.4, 1.8)), 2.0
    bx = float(np.clip(W / 2 + rng.uniform(-0.5, 0.5) - bw / 2, 0.6, W - bw - 0.6))
    q += box(bx, 0.0, D - bl, bw, 0.55, bl, hotel.bedspread, hotel.bedspread)
    q += box(bx - 0.05, 0.0, D - 0.08, bw + 0.1, 1.25, 0.07, hotel.headboard, hotel.headboard)
    pillow = np.full((40, 80, 3), (246, 246, 242), np.uint8)
    for px in (bx + 0.1, bx + bw / 2 + 0.05):
        q += box(px, 0.55, D - 0.55, bw / 2 - 0.15, 0.14, 0.4, pillow, _noise(rng, 80, 40, (225, 225, 222), 3, 1))
    lamps = []
    base_h, shade_w, shade_h = hotel.lamp_dims
    base_tex = np.full((20, 20, 3), hotel.lamp_base, np.uint8)
    for nx in (bx - 0.55, bx + bw + 0.05):
        q += box(nx, 0.0, D - 0.5, 0.5, 0.55, 0.45, hotel.wood, hotel.wood)
        q += box(nx + 0.22, 0.55, D - 0.3, 0.06, base_h, 0.06, base_tex, base_tex)
        sy = 0.55 + base_h
        q += box(nx + 0.25 - shade_w / 2, sy, D - 0.27 - shade_w / 2, shade_w, shade_h, shade_w, hotel.lamp_shade,
                 hotel.lamp_shade)
        lamps.append(P(nx + 0.25, sy + shade_h / 2, D - 0.27))
    # Hotel art above the bed (shared), framed.
    aw = min(bw * 0.9, 1.3)
    ah = aw * hotel.art.shape[0] / hotel.art.shape[1]
    art = _framed(hotel.art, int(aw * PX_PER_M * 2), int(ah * PX_PER_M * 2), hotel.lamp_base)
    q.append(_q(P(bx + bw / 2 - aw / 2, 1.45 + ah, D - 0.01), P(aw, 0, 0), P(0, -ah, 0), art, (0, 0, -1), layer=1))
    # Window on a side wall with per-room view and hotel curtains.
    win_left = bool(rng.random() < 0.5)
    wz, ww, wh = float(rng.uniform(1.2, D - 2.4)), float(rng.uniform(0.9, 1.5)), 1.4
    view = _skyline(rng, 300, 280)
    view = _framed(view, int(ww * PX_PER_M), int(wh * PX_PER_M), (245, 245, 245), border=6)
    cv2.line(view, (view.shape[1] // 2, 0), (view.shape[1] // 2, view.shape[0]), (245, 245, 245), 4)
    wx = 0.01 if win_left else W - 0.01
    sgn = 1 if win_left else -1
    n = (sgn, 0, 0)
    zs = (wz, ww) if win_left else (wz + ww, -ww)
    q.append(_q(P(wx, 0.8 + wh, zs[0]), P(0, 0, zs[1]), P(0, -wh, 0), view, n, layer=1))
    for cz in (wz - 0.35, wz + ww + 0.05):
        zc = (cz, 0.3) if win_left else (cz + 0.3, -0.3)
        q.append(_q(P(wx + sgn * 0.01, H - 0.1, zc[0]), P(0, 0, zc[1]), P(0, -(H - 0.3), 0),
                    _tex_for(hotel.curtain, 0.3, H - 0.3), n, layer=1))
    # Desk and TV on the other side wall; a second picture (room-specific) above the desk.
    dx = W - 0.6 if win_left else 0.0
    dz = float(rng.uniform(0.6, max(0.7, D - bl - 1.3)))
    q += box(dx, 0.0, dz, 0.6, 0.75, 1.2, hotel.wood, hotel.wood)
    tv = np.zeros((60, 100, 3), np.uint8) + 15
    tv_x = W - 0.02 if win_left else 0.02
    tz = (dz + 0.1 + 1.0, -1.0) if win_left else (dz + 0.1, 1.0)
    q.append(_q(P(tv_x, 1.55, tz[0]), P(0, 0, tz[1]), P(0, -0.58, 0), tv, (-sgn, 0, 0), layer=1))
    pic2 = _sk(ART_IMAGES[int(rng.integers(0, len(ART_IMAGES)))])
    y0, x0 = int(rng.integers(0, pic2.shape[0] // 2)), int(rng.integers(0, pic2.shape[1] // 2))
    pic2 = _framed(pic2[y0:y0 + pic2.shape[0] // 2, x0:x0 + pic2.shape[1] // 2], 90, 70, _colour(rng, 20, 120), 6)
    pz = float(rng.uniform(0.2, max(0.3, D - bl - 0.8)))
    pzs = (pz + 0.7, -0.7) if win_left else (pz, 0.7)
    q.append(_q(P(tv_x, 2.15, pzs[0]), P(0, 0, pzs[1]), P(0, -0.55, 0), pic2, (-sgn, 0, 0), layer=1))
    # Door on the door wall with a room number plate.
    door_x = float(rng.uniform(0.3, W - 1.2))
    door = _wood(rng, 90, 210, _colour(rng, 80, 200))
    number = f"{h + 1}{r + 1:02d}"
    cv2.rectangle(door, (25, 50), (65, 68), (230, 215, 160), -1)
    cv2.putText(door, number, (27, 65), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (30, 30, 30), 1, cv2.LINE_AA)
    q.append(_q(P(door_x + 0.9, 2.1, 0.01), P(-0.9, 0, 0), P(0, -2.1, 0), door, (0, 0, 1), layer=1))
    movable = {
        "chair": (hotel.chair, hotel.chair, (0.5, 0.85, 0.5), dx + (0.05 if win_left else 0.55) - (0.6 if win_left else 0), dz + 0.3),
        "armchair": (hotel.chair, hotel.chair, (0.8, 0.7, 0.8), W - 1.2 if not win_left else 0.3, 0.6),
        "suitcase": (np.full((20, 20, 3), _colour(rng), np.uint8), _noise(rng, 60, 60, _colour(rng), 10, 1), (0.45, 0.65, 0.25),
                     float(rng.uniform(0.4, W - 0.8)), float(rng.uniform(0.5, 1.5))),
    }
    layout = {"W": round(W, 3), "H": round(H, 3), "D": round(D, 3), "bed_x": round(bx, 3), "window": "left" if win_left else "right",
              "door_x": round(door_x, 3), "number": number}
    return Room(f"{hotel.hotel_id}/room{r:02d}", (W, H, D), q, lamps, movable, layout)


# --------------------------------------------------------------------------- rendering
def _rotation(yaw: float, pitch: float) -> np.ndarray:
    """World -> camera rotation; camera x right, y down, z forward; yaw about world up (0 = +z)."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    fwd = np.array([sy * cp, sp, cy * cp])
    right = np.array([cy, 0.0, -sy])
    down = np.cross(right, fwd)  # x right, z forward -> y down (world y is up)
    return np.stack([right, down, fwd])


def _clip_near(poly: np.ndarray, near: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-space polygon (n, 3) to z >= near."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ina, inb = a[2] >= near, b[2] >= near
        if ina:
            out.append(a)
        if ina != inb:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out)


def _intrinsics(f: float, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])


def _drawn_quads(quads: list[Quad], cam: np.ndarray, R: np.ndarray, f: float, size: tuple[int, int]):
    """(index, quad, projected 2-D corners) for each quad that faces the camera and reaches the
    frame, in draw order (layer, then far to near): shared by `render` and `id_buffer` so the
    co-visibility check sees exactly the occlusions the renderer draws."""
    w, h = size
    K = _intrinsics(f, size)
    order = sorted(range(len(quads)), key=lambda i: (quads[i].layer, -float(np.linalg.norm(
        (quads[i].depth_key if quads[i].depth_key is not None else quads[i].origin + quads[i].u / 2 + quads[i].v / 2) - cam))
        if quads[i].layer >= 2 else 0.0))
    for i in order:
        qd = quads[i]
        centre = qd.origin + qd.u / 2 + qd.v / 2
        if qd.normal is not None and float(np.dot(qd.normal, cam - centre)) <= 0:
            continue  # seen from behind
        corners = np.stack([qd.origin, qd.origin + qd.u, qd.origin + qd.u + qd.v, qd.origin + qd.v])
        poly = _clip_near((corners - cam) @ R.T, 0.05)
        if len(poly) < 3:
            continue
        pts = poly @ K.T
        pts = pts[:, :2] / pts[:, 2:3]
        if pts[:, 0].max() < 0 or pts[:, 0].min() > w or pts[:, 1].max() < 0 or pts[:, 1].min() > h:
            continue  # wholly outside the frame
        yield i, qd, pts


def render(quads: list[Quad], cam: np.ndarray, R: np.ndarray, f: float, size: tuple[int, int],
           light_dir: np.ndarray, ambient: float) -> np.ndarray:
    """Draw quads with a pinhole camera (focal f px, principal point at the centre)."""
    import cv2

    w, h = size
    K = _intrinsics(f, size)
    img = np.zeros((h, w, 3), np.float32)
    for _, qd, pts in _drawn_quads(quads, cam, R, f, size):
        # Warp only the polygon's bounding box: most quads cover a small part of the frame.
        x0, y0 = max(0, int(np.floor(pts[:, 0].min()))), max(0, int(np.floor(pts[:, 1].min())))
        x1, y1 = min(w, int(np.ceil(pts[:, 0].max())) + 1), min(h, int(np.ceil(pts[:, 1].max())) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        th, tw = qd.tex.shape[:2]
        M = np.stack([R @ qd.u / tw, R @ qd.v / th, R @ (qd.origin - cam)], axis=1)
        Hm = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ K @ M
        warped = cv2.warpPerspective(qd.tex, Hm, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        local = np.clip(pts - [x0, y0], -1e5, 1e5)
        cv2.fillPoly(mask, [np.round(local * 16).astype(np.int32)], 255, cv2.LINE_8, shift=4)
        nrm = qd.normal if qd.normal is not None else np.cross(qd.u, qd.v)
        nrm = nrm / max(float(np.linalg.norm(nrm)), 1e-9)
        k = ambient + (1 - ambient) * max(0.0, float(np.dot(nrm, light_dir)))
        m = mask > 0
        img[y0:y1, x0:x1][m] = warped[m].astype(np.float32) * k
    return img


def id_buffer(quads: list[Quad], cam: np.ndarray, R: np.ndarray, f: float, size: tuple[int, int]) -> np.ndarray:
    """(h, w) int32: index of the quad drawn at each pixel (-1: none), same culling and draw order
    as `render` (so the same occlusions), without textures or light."""
    import cv2

    w, h = size
    out = np.full((h, w), -1, np.int32)
    for i, _, pts in _drawn_quads(quads, cam, R, f, size):
        pts = np.clip(pts, -1e5, 1e5)
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        out[m > 0] = i
    return out


def _camera(meta: dict, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    R = _rotation(math.radians(meta["yaw_deg"]), math.radians(meta["pitch_deg"]))
    return np.array(meta["cam"], np.float64), R, size[0] / 2 / math.tan(math.radians(meta["fov_deg"]) / 2)


def view_overlap(quads: list[Quad], meta_a: dict, meta_b: dict, size: tuple[int, int] = (160, 120)) -> float:
    """Share of view a's pixels whose 3-D surface point is also visible in view b (same quad drawn at
    its projection, inside b's frame): the co-visibility of two views of one room (0: nothing in
    common, so no method could match them from the room itself). Cameras from the views' meta."""
    cam_a, Ra, fa = _camera(meta_a, size)
    cam_b, Rb, fb = _camera(meta_b, size)
    ids_a, ids_b = id_buffer(quads, cam_a, Ra, fa, size), id_buffer(quads, cam_b, Rb, fb, size)
    w, h = size
    ys, xs = np.mgrid[0:h:2, 0:w:2]
    ys, xs = ys.ravel(), xs.ravel()
    qid = ids_a[ys, xs]
    ok = qid >= 0
    if not ok.any():
        return 0.0
    ys, xs, qid = ys[ok], xs[ok], qid[ok]
    rays = np.stack([(xs + 0.5 - w / 2) / fa, (ys + 0.5 - h / 2) / fa, np.ones(len(xs))], 1) @ Ra  # world dirs
    normals = np.array([np.cross(q.u, q.v) for q in quads])[qid]
    origins = np.array([q.origin for q in quads])[qid]
    den = np.einsum("ij,ij->i", normals, rays)
    t = np.einsum("ij,ij->i", normals, origins - cam_a) / np.where(np.abs(den) < 1e-12, np.nan, den)
    pc = (cam_a + t[:, None] * rays - cam_b) @ Rb.T
    with np.errstate(invalid="ignore", divide="ignore"):
        px, py = fb * pc[:, 0] / pc[:, 2] + w / 2, fb * pc[:, 1] / pc[:, 2] + h / 2
        inside = (pc[:, 2] > 0.05) & (px >= 0) & (px < w) & (py >= 0) & (py < h)
    hit = np.zeros(len(qid), bool)
    hit[inside] = ids_b[py[inside].astype(int), px[inside].astype(int)] == qid[inside]
    return float(hit.sum()) / len(qid)


# Co-visibility of a non-reference view with the reference (view_overlap, share of its pixels):
# ScanNet-style wide-baseline pairs (SuperGlue's ScanNet test pairs: overlap 0.4-0.8 of the frame)
# share part of the room, never all and never none. Measured on rooms-v1 (this check added in v2):
# 6/72 views shared < 5 % with every other view of their room, 14 shared > 90 % with the reference.
OVERLAP_RANGE = (0.15, 0.8)
OVERLAP_TRIES = 12
OVERLAP_SIZE = (160, 120)


def _ref_camera(W: float) -> tuple[np.ndarray, float, float, float]:
    """The reference view's camera: from the door end, looking at the bed."""
    return np.array([W / 2, 1.55, 0.45]), 0.0, math.radians(-8), math.radians(70)


def _draw_camera(rng: np.random.Generator, room: Room) -> tuple[np.ndarray, float, float, float]:
    """(position, yaw, pitch, horizontal FOV) of a non-reference view: aimed near the bed, or a side
    view (20 %)."""
    W, _, D = room.size
    cam = np.array([rng.uniform(0.45, W - 0.45), rng.uniform(1.1, 1.8), rng.uniform(0.4, max(0.5, D - 2.3))])
    side = rng.random() < 0.2
    yaw = math.radians(float(rng.choice([-1, 1]) * rng.uniform(60, 95))) if side else math.radians(rng.uniform(-40, 40))
    if not side:  # aim roughly at the bed
        bed = np.array([room.layout["bed_x"] + 0.8, 0.6, D - 1.0])
        yaw = math.atan2(bed[0] - cam[0], bed[2] - cam[2]) + math.radians(rng.uniform(-25, 25))
    pitch, fov = math.radians(rng.uniform(-22, 0)), math.radians(rng.uniform(50, 85))
    return cam, yaw, pitch, fov


def _meta(cam: np.ndarray, yaw: float, pitch: float, fov: float) -> dict:
    return {"cam": [float(c) for c in cam], "yaw_deg": math.degrees(yaw), "pitch_deg": math.degrees(pitch),
            "fov_deg": math.degrees(fov)}


@dataclass
class View:
    image: np.ndarray
    face: tuple | None
    meta: dict


def render_view(seed: int, hotel: Hotel, room: Room, h: int, r: int, v: int, size=IMAGE_SIZE,
                person_texture: np.ndarray | None = None) -> View:
    import cv2

    rng = np.random.default_rng([seed, h, r, v, 3])
    W, H, D = room.size
    ref = v == 0
    if ref:  # reference: from the door end, looking at the bed
        cam, yaw, pitch, fov = _ref_camera(W)
    else:
        cam, yaw, pitch, fov = _draw_camera(rng, room)
        # Co-visibility with the reference kept in OVERLAP_RANGE: a view that shares nothing with
        # the other views of its room cannot be matched from the room (rooms-v1 had 6/72 such views)
        # and one that is nearly the reference is not wide-baseline. Redraws use their own stream,
        # so a view's light, furniture and person are drawn the same whatever its camera needed.
        covis = view_overlap(room.static, _meta(cam, yaw, pitch, fov), _meta(*_ref_camera(W)), OVERLAP_SIZE)
        for attempt in range(OVERLAP_TRIES):
            if OVERLAP_RANGE[0] <= covis <= OVERLAP_RANGE[1]:
                break
            redraw = _draw_camera(np.random.default_rng([seed, h, r, v, 4, attempt]), room)
            c2 = view_overlap(room.static, _meta(*redraw), _meta(*_ref_camera(W)), OVERLAP_SIZE)
            if abs(c2 - np.clip(c2, *OVERLAP_RANGE)) < abs(covis - np.clip(covis, *OVERLAP_RANGE)):
                (cam, yaw, pitch, fov), covis = redraw, c2
    R = _rotation(yaw, pitch)
    big = (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE)
    f = big[0] / 2 / math.tan(fov / 2)
    night = (not ref) and rng.random() < 0.4
    quads = list(room.static)
    moved = []
    for name, (tt, ts, (sx, sy, sz), x0, z0) in room.movable.items():
        if name == "suitcase" and (ref or rng.random() < 0.5):
            continue  # the suitcase comes and goes
        if not ref and rng.random() < 0.5:
            x0 = float(np.clip(x0 + rng.uniform(-0.6, 0.6), 0.05, W - sx - 0.05))
            z0 = float(np.clip(z0 + rng.uniform(-0.6, 0.6), 0.05, D - sz - 0.05))
            moved.append(name)
        if name == "suitcase":
            moved.append("suitcase")
        quads += box(x0, 0.0, z0, sx, sy, sz, tt, ts)
    light = np.array([0.3, 0.8, -0.5]) if not night else np.array([0.0, 0.4, -0.9])
    img = render(quads, cam, R, f, big, light / np.linalg.norm(light), 0.55 if not night else 0.4)
    if night:  # warm lamp glow around each visible shade
        yy, xx = np.mgrid[0:big[1], 0:big[0]].astype(np.float32)
        for lamp in room.lamps:
            pc = R @ (lamp - cam)
            if pc[2] <= 0.1:
                continue
            px, py = f * pc[0] / pc[2] + big[0] / 2, f * pc[1] / pc[2] + big[1] / 2
            rad = f * 0.5 / pc[2]
            g = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * rad ** 2))[..., None]
            img += 120 * g * np.array([1.0, 0.8, 0.5], np.float32)
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    gain = float(rng.uniform(0.7, 1.2)) if not ref else 1.0
    tint = np.array([1.12, 1.0, 0.8]) if night else (np.array([1.0, 1.0, 1.0]) if ref else
                                                     np.array([rng.uniform(0.92, 1.08), 1.0, rng.uniform(0.92, 1.08)]))
    gamma = float(rng.uniform(0.85, 1.2)) if not ref else 1.0
    img = 255.0 * (np.clip(img * gain * tint / 255.0, 0, 1) ** gamma)
    img = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
    face = None
    if not ref and person_texture is not None and rng.random() < PERSON_SHARE:
        from bench.eval_scenes import paste_person

        img, face = paste_person(img, person_texture, cx_frac=float(rng.uniform(0.3, 0.7)),
                                 head_frac=float(rng.uniform(0.1, 0.15)))
        face = tuple(round(float(c), 1) for c in face)
    covis = 1.0 if ref else covis
    meta = {"covis_ref": round(float(covis), 3), "cam": [round(float(c), 3) for c in cam], "yaw_deg": round(math.degrees(yaw), 1),
            "pitch_deg": round(math.degrees(pitch), 1), "fov_deg": round(math.degrees(fov), 1),
            "light": "night" if night else "day", "gain": round(gain, 3), "gamma": round(gamma, 3), "moved": moved}
    return View(img, face, meta)


# --------------------------------------------------------------------------- set
FIELDS = ["file", "hotel_id", "room_id", "view", "person", "face_x1", "face_y1", "face_x2", "face_y2",
          "light", "fov_deg", "yaw_deg", "moved", "camera", "covis_ref"]


def params(n_hotels: int, rooms_per_hotel: int, views_per_room: int, seed: int = SEED,
           size: tuple[int, int] = IMAGE_SIZE) -> dict:
    return {"version": SET_VERSION, "seed": seed, "n_hotels": n_hotels, "rooms_per_hotel": rooms_per_hotel,
            "views_per_room": views_per_room, "size": list(size), "person_share": PERSON_SHARE}


def generate(out: Path, n_hotels: int = FULL["n_hotels"], rooms_per_hotel: int = FULL["rooms_per_hotel"],
             views_per_room: int = FULL["views_per_room"], seed: int = SEED,
             size: tuple[int, int] = IMAGE_SIZE) -> Path:
    """Render the set into `out` (created); returns the labels.csv path. Same arguments, same files.
    `size` (w, h) other than IMAGE_SIZE is for tests (the bench uses IMAGE_SIZE)."""
    from PIL import Image

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    person = _sk("astronaut")
    rows = []
    hotels_meta = {}
    for h in range(n_hotels):
        hotel = make_hotel(seed, h)
        hotels_meta[hotel.hotel_id] = {"decor": hotel.decor, "rooms": {}}
        for r in range(rooms_per_hotel):
            room = make_room(seed, hotel, h, r)
            hotels_meta[hotel.hotel_id]["rooms"][room.room_id] = room.layout
            for v in range(views_per_room):
                view = render_view(seed, hotel, room, h, r, v, size=tuple(size), person_texture=person)
                name = f"images/h{h:02d}_r{r:02d}_v{v:02d}.jpg"
                Image.fromarray(view.image).save(out / name, quality=JPEG_QUALITY)
                fx = view.face or ("", "", "", "")
                m = view.meta
                rows.append([name, hotel.hotel_id, room.room_id, v, int(view.face is not None), *fx, m["light"],
                             m["fov_deg"], m["yaw_deg"], "+".join(m["moved"]), json.dumps(m["cam"]), m["covis_ref"]])
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FIELDS)
        w.writerows(rows)
    p = params(n_hotels, rooms_per_hotel, views_per_room, seed, size)
    lic = "\n".join(f"- skimage.data.{k}: {v}" for k, v in LICENCES.items())
    (out / "MANIFEST.md").write_text(
        f"# {SET_VERSION}: rendered hotel rooms (bench/room_set.py)\n\n```json\n{json.dumps(p, indent=1)}\n```\n\n"
        f"Same hotel_id = shared décor; same room_id = same room (different camera, light, furniture, person).\n"
        f"Procedural textures: generated, no licence. Bundled images (scikit-image, BSD-3-Clause package):\n{lic}\n\n"
        f"Décor and layouts:\n```json\n{json.dumps(hotels_meta, indent=1, default=str)}\n```\n")
    (out / "params.json").write_text(json.dumps(p, sort_keys=True))
    return out / "labels.csv"


def ensure_set(quick: bool = False, root: Path = DEFAULT_ROOT, seed: int = SEED) -> Path:
    """The set's directory under `root`, rendered if missing or made with other parameters."""
    size = QUICK if quick else FULL
    out = Path(root) / (SET_VERSION + ("-quick" if quick else ""))
    want = params(seed=seed, **size)
    try:
        have = json.loads((out / "params.json").read_text())
    except (OSError, ValueError):
        have = None
    if have != json.loads(json.dumps(want, sort_keys=True)) or not (out / "labels.csv").is_file():
        for old in (out / "images").glob("h*_r*_v*.jpg"):  # views of an older parameter set
            old.unlink()
        generate(out, seed=seed, **size)
    return out


def load_labels(out: Path) -> list[dict]:
    """labels.csv rows, with `face` as an (x1, y1, x2, y2) tuple or None."""
    with open(Path(out) / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["face"] = tuple(float(row[k]) for k in ("face_x1", "face_y1", "face_x2", "face_y2")) if row["person"] == "1" else None
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help=f"default {DEFAULT_ROOT}/{SET_VERSION}[-quick]")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK}")
    ap.add_argument("--hotels", type=int)
    ap.add_argument("--rooms", type=int)
    ap.add_argument("--views", type=int)
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args(argv)
    size = dict(QUICK if a.quick else FULL)
    for k, v in (("n_hotels", a.hotels), ("rooms_per_hotel", a.rooms), ("views_per_room", a.views)):
        if v:
            size[k] = v
    out = a.out or DEFAULT_ROOT / (SET_VERSION + ("-quick" if a.quick else ""))
    print(generate(out, seed=a.seed, **size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
