#!/usr/bin/env python3
"""Generate vidpipe's committed demo/test media (``sample_media/``), deterministically.

Everything is either rendered here with numpy/OpenCV (seeded) or taken from the public-domain / CC0
images bundled with scikit-image. Re-running with the same library versions gives byte-identical
files (checked: Pillow/libjpeg-turbo, zlib, x264 single-threaded, fixed zip timestamps).
The facts a test may assert (GPS, near-duplicate groups, video cuts) are written to
``sample_media/EXPECTED.json`` by the same code that makes the files, so they cannot drift.

Usage: ``python tools/make_sample_media.py [--out DIR]`` (default: ``<repo>/sample_media``).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import piexif
import skimage.data
from PIL import Image, ImageEnhance

SEED = 20240601
JPEG_QUALITY = 85  # brief: "JPEG quality ~85", a typical camera/phone default
LOW_QUALITY = 25  # heavy re-compression, still a near-duplicate by PDQ/pHash
FPS = 25
VIDEO_SIZE = (320, 240)
SMALL_VIDEO_SIZE = (240, 180)
ROOM_SIZE = (960, 720)  # world canvas; views are warped out of it
VIEW_SIZE = (640, 480)
ZIP_TIME = (2024, 1, 1, 12, 0, 0)  # fixed so the archive is byte-stable

# GPS fixtures: (lat, lon, alt_m or None). Chosen to cover every sign: S/W, N/E, S/E, N/W, alt < 0.
GPS_RIO = (-22.9068, -43.1729, 11.5)
GPS_DEAD_SEA = (31.5590, 35.4732, -390.0)
GPS_CAPE_CANAVERAL = (28.5623, -80.5774, None)
GPS_VIENNA = (48.2082, 16.3738, 171.0)
GPS_SYDNEY = (-33.8688, 151.2093, 58.0)


# ----------------------------------------------------------------------------- EXIF


def _dms(value: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Degrees/minutes/seconds rationals, seconds to 1/100 (what phones typically write)."""
    v = abs(value)
    deg = int(v)
    minutes = int((v - deg) * 60)
    sec100 = int(round((v - deg - minutes / 60) * 3600 * 100))
    return (deg, 1), (minutes, 1), (sec100, 100)


def _dms_to_decimal(dms: tuple[tuple[int, int], ...], negative: bool) -> float:
    """The value a correct EXIF reader will recover from the rationals we wrote."""
    d, m, s = (n / den for n, den in dms)
    return round((-1 if negative else 1) * (d + m / 60 + s / 3600), 6)


def make_exif(
    gps: tuple[float, float, float | None] | None = None,
    make: str | None = None,
    model: str | None = None,
    serial: str | None = None,
    dt_original: str | None = None,
    offset: str | None = None,
) -> tuple[bytes, dict]:
    """Build an EXIF block with piexif; return it and the facts a reader should get back."""
    zeroth: dict = {}
    exif: dict = {}
    gps_ifd: dict = {}
    facts: dict = {
        "make": make,
        "model": model,
        "serial": serial,
        "datetime_original": dt_original,
        "offset_time": offset,
        "gps": None,
    }
    if make:
        zeroth[piexif.ImageIFD.Make] = make.encode()
    if model:
        zeroth[piexif.ImageIFD.Model] = model.encode()
    if serial:
        exif[piexif.ExifIFD.BodySerialNumber] = serial.encode()
    if dt_original:
        exif[piexif.ExifIFD.DateTimeOriginal] = dt_original.encode()
    if offset:
        exif[piexif.ExifIFD.OffsetTimeOriginal] = offset.encode()
    if gps:
        lat, lon, alt = gps
        lat_dms, lon_dms = _dms(lat), _dms(lon)
        gps_ifd = {
            piexif.GPSIFD.GPSVersionID: (2, 3, 0, 0),
            piexif.GPSIFD.GPSLatitudeRef: b"S" if lat < 0 else b"N",
            piexif.GPSIFD.GPSLatitude: lat_dms,
            piexif.GPSIFD.GPSLongitudeRef: b"W" if lon < 0 else b"E",
            piexif.GPSIFD.GPSLongitude: lon_dms,
        }
        if alt is not None:
            gps_ifd[piexif.GPSIFD.GPSAltitudeRef] = 1 if alt < 0 else 0  # 1 = below sea level
            gps_ifd[piexif.GPSIFD.GPSAltitude] = (int(round(abs(alt) * 10)), 10)
        facts["gps"] = {
            "lat": _dms_to_decimal(lat_dms, lat < 0),
            "lon": _dms_to_decimal(lon_dms, lon < 0),
            "alt": alt,
        }
    blob = piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps_ifd, "1st": {}, "thumbnail": None})
    return blob, facts


def save_jpeg(path: Path, rgb: np.ndarray, quality: int = JPEG_QUALITY, exif: bytes | None = None) -> None:
    """Baseline JPEG with fixed settings (4:2:0, optimised Huffman) so bytes are reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"quality": quality, "optimize": True, "subsampling": 2}
    if exif:
        kwargs["exif"] = exif
    Image.fromarray(rgb).save(path, "JPEG", **kwargs)


def jpeg_roundtrip(path: Path) -> np.ndarray:
    """Decode a file we wrote (variants are made from the decoded base, like real re-saves)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ----------------------------------------------------------------------------- textures


def _tile(tile: np.ndarray, w: int, h: int) -> np.ndarray:
    reps = (h // tile.shape[0] + 1, w // tile.shape[1] + 1, 1)
    return np.tile(tile, reps)[:h, :w].copy()


def damask(w: int, h: int, bg: tuple, fg: tuple) -> np.ndarray:
    """Trellis wallpaper: diamonds with a dot and four petals per cell."""
    t = np.full((48, 40, 3), bg, np.uint8)
    cv2.polylines(t, [np.array([[20, 0], [40, 24], [20, 48], [0, 24]])], True, fg, 2, cv2.LINE_AA)
    cv2.circle(t, (20, 24), 4, fg, -1, cv2.LINE_AA)
    for dx, dy in ((0, -10), (0, 10), (-8, 0), (8, 0)):
        cv2.ellipse(t, (20 + dx, 24 + dy), (3, 5) if dx == 0 else (5, 3), 0, 0, 360, fg, -1, cv2.LINE_AA)
    return _tile(t, w, h)


def stripes(w: int, h: int, bg: tuple, fg: tuple) -> np.ndarray:
    """Regency stripes with small rosettes in the light bands."""
    t = np.full((36, 36, 3), bg, np.uint8)
    t[:, 0:10] = fg
    t[:, 14:16] = fg
    cv2.circle(t, (26, 18), 4, fg, 1, cv2.LINE_AA)
    cv2.circle(t, (26, 18), 1, fg, -1)
    return _tile(t, w, h)


def plaid(w: int, h: int, c1: tuple, c2: tuple, c3: tuple) -> np.ndarray:
    """Tartan-like bedspread: overlapping bands of three colours."""
    y, x = np.mgrid[0:h, 0:w]
    a = ((x // 18) % 3 == 0).astype(np.float32)
    b = ((y // 18) % 3 == 0).astype(np.float32)
    thin = (((x % 54) == 40) | ((y % 54) == 40)).astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for ch in range(3):
        img[..., ch] = c1[ch] * (1 - 0.5 * (a + b)) + c2[ch] * 0.5 * (a + b)
        img[..., ch] = img[..., ch] * (1 - thin) + c3[ch] * thin
    return img.clip(0, 255).astype(np.uint8)


def chevron(w: int, h: int, c1: tuple, c2: tuple) -> np.ndarray:
    """Zig-zag bedspread."""
    y, x = np.mgrid[0:h, 0:w]
    zig = np.abs((x % 40) - 20)
    band = ((y + zig) // 14) % 2
    return np.where(band[..., None] == 0, np.array(c1, np.uint8), np.array(c2, np.uint8))


def noise_texture(rng: np.random.Generator, w: int, h: int, base: tuple, amp: float, blur: int) -> np.ndarray:
    """Carpet pile / plaster: blurred noise around a base colour."""
    n = rng.normal(0, 1, (h, w)).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), blur)
    n /= n.std() + 1e-6
    img = np.array(base, np.float32)[None, None, :] + amp * n[..., None]
    return img.clip(0, 255).astype(np.uint8)


def wood(rng: np.random.Generator, w: int, h: int, base: tuple) -> np.ndarray:
    """Wood grain: wavy horizontal lines plus noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    grain = np.sin(y * 0.45 + 3 * np.sin(x * 0.02)) * 0.5 + 0.5
    img = np.array(base, np.float32)[None, None, :] * (0.75 + 0.25 * grain[..., None])
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def sky(w: int, h: int) -> np.ndarray:
    """Sky seen through a window: vertical gradient with two soft clouds."""
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = (1 - t) * np.array([90, 150, 225], np.float32) + t * np.array([190, 220, 245], np.float32)
    img = np.repeat(img, w, axis=1)
    cloud = np.zeros((h, w), np.float32)
    cv2.ellipse(cloud, (w // 3, h // 4), (w // 4, h // 12), 0, 0, 360, 1.0, -1)
    cv2.ellipse(cloud, (2 * w // 3, h // 2), (w // 3, h // 14), 0, 0, 360, 1.0, -1)
    cloud = cv2.GaussianBlur(cloud, (0, 0), max(2, w // 20))[..., None]
    return (img * (1 - cloud) + 250 * cloud).clip(0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- room rendering


def paste_quad(canvas: np.ndarray, tex: np.ndarray, quad: list[tuple[float, float]]) -> None:
    """Warp ``tex`` onto the quadrilateral ``quad`` (TL, TR, BR, BL) of ``canvas`` in place."""
    h, w = tex.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    m = cv2.getPerspectiveTransform(src, np.float32(quad))
    size = (canvas.shape[1], canvas.shape[0])
    warped = cv2.warpPerspective(tex, m, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones((h, w), np.float32), m, size, flags=cv2.INTER_LINEAR)[..., None]
    canvas[:] = (canvas * (1 - mask) + warped * mask).astype(np.uint8)


def shade(img: np.ndarray, k: float) -> np.ndarray:
    return (img.astype(np.float32) * k).clip(0, 255).astype(np.uint8)


def add_glow(canvas: np.ndarray, center: tuple[int, int], radius: int, strength: float) -> None:
    """Warm lamp light: additive Gaussian falloff."""
    h, w = canvas.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    g = np.exp(-((x - center[0]) ** 2 + (y - center[1]) ** 2) / (2 * radius**2))[..., None]
    canvas[:] = (canvas + strength * g * np.array([255, 200, 120], np.float32)).clip(0, 255).astype(np.uint8)


def _shell(rng: np.random.Generator, wallpaper: np.ndarray, carpet: np.ndarray) -> np.ndarray:
    """Back wall, side walls, ceiling and floor in one-point perspective."""
    w, h = ROOM_SIZE
    c = np.zeros((h, w, 3), np.uint8)
    paste_quad(c, noise_texture(rng, 200, 60, (238, 235, 228), 3, 4), [(0, 0), (w, 0), (820, 70), (140, 70)])
    paste_quad(c, carpet, [(140, 470), (820, 470), (w, h), (0, h)])
    paste_quad(c, shade(wallpaper[:, :200], 0.82), [(0, 0), (140, 70), (140, 470), (0, h)])
    paste_quad(c, shade(wallpaper[:, :200], 0.72), [(820, 70), (w, 0), (w, h), (820, 470)])
    c[70:470, 140:820] = wallpaper[:400, :680]
    cv2.line(c, (140, 470), (820, 470), (90, 80, 70), 3, cv2.LINE_AA)  # skirting board
    return c


def render_room_a(rng: np.random.Generator) -> np.ndarray:
    """Room A: navy trellis wallpaper, plaid bedspread, wooden headboard, left-wall window, table lamp."""
    c = _shell(
        rng,
        damask(700, 420, (232, 222, 196), (44, 62, 112)),
        noise_texture(rng, 400, 200, (176, 156, 124), 10, 1.2),
    )
    paste_quad(c, sky(60, 160), [(30, 95), (112, 136), (112, 366), (30, 510)])  # window on left wall
    cv2.line(c, (71, 116), (71, 438), (245, 245, 240), 4, cv2.LINE_AA)
    cv2.line(c, (30, 300), (112, 250), (245, 245, 240), 4, cv2.LINE_AA)
    paste_quad(
        c, noise_texture(rng, 30, 200, (150, 30, 40), 12, 2), [(112, 120), (135, 131), (135, 420), (112, 380)]
    )
    c[240:400, 300:660] = wood(rng, 360, 160, (100, 62, 36))  # headboard
    cv2.rectangle(c, (300, 240), (660, 400), (60, 36, 20), 3)
    paste_quad(
        c,
        plaid(500, 260, (200, 40, 45), (245, 240, 232), (30, 40, 80)),
        [(290, 390), (670, 390), (740, 570), (220, 570)],
    )
    c[570:650, 220:740] = shade(plaid(520, 80, (200, 40, 45), (245, 240, 232), (30, 40, 80)), 0.7)
    for cx in (390, 570):  # pillows
        cv2.ellipse(c, (cx, 395), (78, 26), 0, 0, 360, (248, 248, 244), -1, cv2.LINE_AA)
        cv2.ellipse(c, (cx, 395), (78, 26), 0, 0, 360, (200, 200, 196), 2, cv2.LINE_AA)
    c[420:520, 700:800] = wood(rng, 100, 100, (110, 70, 40))  # nightstand
    cv2.line(c, (704, 470), (796, 470), (60, 36, 20), 2)
    c[350:420, 742:758] = (200, 170, 90)  # lamp base
    cv2.fillConvexPoly(
        c, np.array([[718, 290], [782, 290], [800, 352], [700, 352]]), (250, 215, 120), cv2.LINE_AA
    )
    add_glow(c, (750, 330), 70, 0.45)
    c[110:215, 410:550] = (250, 250, 245)  # framed picture
    cv2.rectangle(c, (410, 110), (550, 215), (150, 120, 40), 6)
    cv2.circle(c, (455, 160), 28, (220, 90, 40), -1, cv2.LINE_AA)
    cv2.circle(c, (505, 170), 20, (40, 120, 170), -1, cv2.LINE_AA)
    return c


def render_room_b(rng: np.random.Generator) -> np.ndarray:
    """Room B: sage stripes, chevron bedspread, tufted grey headboard, blinds, floor lamp."""
    carpet = noise_texture(rng, 400, 200, (120, 36, 40), 8, 1.0)
    for x in range(0, 400, 40):  # geometric carpet motif
        for y in range(0, 200, 40):
            cv2.polylines(
                carpet,
                [np.array([[x + 20, y], [x + 40, y + 20], [x + 20, y + 40], [x, y + 20]])],
                True,
                (220, 180, 90),
                2,
                cv2.LINE_AA,
            )
    c = _shell(rng, stripes(700, 420, (226, 232, 212), (112, 140, 104)), carpet)
    c[110:360, 170:300] = sky(130, 250)  # window on back wall, with blinds
    for y in range(114, 360, 14):
        cv2.line(c, (170, y), (300, y), (205, 205, 200), 7)
    cv2.rectangle(c, (166, 106), (304, 364), (250, 250, 250), 6)
    head = noise_texture(rng, 400, 170, (128, 128, 134), 5, 2)
    for x in range(25, 400, 50):
        for y in range(25, 170, 50):
            cv2.circle(head, (x, y), 4, (80, 80, 86), -1, cv2.LINE_AA)
    c[225:395, 380:780] = head
    spread = chevron(560, 260, (232, 128, 40), (90, 52, 30))
    paste_quad(c, spread, [(370, 385), (790, 385), (880, 580), (320, 580)])
    c[580:660, 320:880] = shade(chevron(560, 80, (232, 128, 40), (90, 52, 30)), 0.7)
    for cx in (480, 680):
        cv2.rectangle(c, (cx - 80, 372), (cx + 80, 410), (236, 236, 244), -1, cv2.LINE_AA)
    cv2.line(c, (330, 200), (330, 520), (40, 40, 40), 5, cv2.LINE_AA)  # floor lamp
    cv2.ellipse(c, (330, 522), (30, 8), 0, 0, 360, (40, 40, 40), -1, cv2.LINE_AA)
    c[160:210, 295:365] = (245, 240, 225)
    add_glow(c, (330, 190), 80, 0.4)
    for x0, col in ((560, (60, 120, 80)), (660, (70, 90, 160))):  # two small landscapes
        c[120:190, x0 : x0 + 80] = (200, 220, 235)
        c[160:190, x0 : x0 + 80] = col
        cv2.rectangle(c, (x0, 120), (x0 + 80, 190), (30, 30, 30), 4)
    return c


def view(
    canvas: np.ndarray,
    quad: list[tuple[float, float]],
    size: tuple[int, int],
    gain: tuple,
    gamma: float,
    rng: np.random.Generator,
    noise: float = 2.0,
) -> np.ndarray:
    """A camera view: perspective crop of the world canvas, colour/exposure change, sensor noise."""
    w, h = size
    m = cv2.getPerspectiveTransform(np.float32(quad), np.float32([[0, 0], [w, 0], [w, h], [0, h]]))
    img = cv2.warpPerspective(canvas, m, (w, h), flags=cv2.INTER_AREA).astype(np.float32) / 255
    img = (img**gamma) * np.array(gain, np.float32)
    img = img * 255 + (rng.normal(0, noise, img.shape) if noise else 0)
    return img.clip(0, 255).astype(np.uint8)


# View quads (TL, TR, BR, BL) in canvas coordinates and lighting for each still.
VIEWS = {
    "1": ([(30, 20), (930, 20), (930, 695), (30, 695)], (1.0, 1.0, 1.0), 1.0),  # wide, daylight
    "2": ([(200, 60), (960, 0), (960, 720), (200, 660)], (1.06, 0.98, 0.86), 1.1),  # turned right, warm
    "3": ([(250, 180), (850, 150), (870, 610), (230, 640)], (0.85, 0.8, 0.72), 1.35),  # close on bed, evening
}


# ----------------------------------------------------------------------------- video


def _pattern_frame(i: int) -> np.ndarray:
    """Moving rainbow diagonal stripes with a bouncing disc (no resemblance to any still)."""
    w, h = VIDEO_SIZE
    y, x = np.mgrid[0:h, 0:w]
    hue = (((x + y + 3 * i) // 20) * 23 % 180).astype(np.uint8)
    hsv = np.stack([hue, np.full_like(hue, 200), np.full_like(hue, 230)], -1)
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    cx = int(40 + (w - 80) * abs(((i / 30) % 2) - 1))
    cv2.circle(img, (cx, h // 2), 35, (255, 255, 255), -1, cv2.LINE_AA)
    return img


def _crop_resize(
    img: np.ndarray, x: float, y: float, cw: float, ch: float, size: tuple[int, int]
) -> np.ndarray:
    x, y, cw, ch = (int(round(v)) for v in (x, y, cw, ch))
    return cv2.resize(img[y : y + ch, x : x + cw], size, interpolation=cv2.INTER_AREA)


def video_frames(
    room_a: np.ndarray, room_b: np.ndarray, astronaut: np.ndarray
) -> tuple[list[np.ndarray], list[dict]]:
    """Four shots with hard cuts: room A pan, astronaut push-in, room B zoom, moving pattern."""
    n = 40  # frames per shot except the last (1.6 s at 25 fps)
    frames: list[np.ndarray] = []
    for i in range(n):  # slow pan across room A (2 canvas px = 1 video px per frame)
        frames.append(_crop_resize(room_a, 100 + 2 * i, 120, 640, 480, VIDEO_SIZE))
    for i in range(n):  # slow push-in on the astronaut's face
        t = i / (n - 1)
        frames.append(_crop_resize(astronaut, 40 + 85 * t, 30 * t, 432 - 176 * t, 324 - 132 * t, VIDEO_SIZE))
    for i in range(n):  # zoom into room B
        t = i / (n - 1)
        frames.append(
            _crop_resize(room_b, 60 + 120 * t, 40 + 90 * t, 880 - 240 * t, 660 - 180 * t, VIDEO_SIZE)
        )
    for i in range(30):
        frames.append(_pattern_frame(i))
    shots = [
        {"start_s": 0.0, "end_s": 1.6, "content": "room_a (pan)"},
        {"start_s": 1.6, "end_s": 3.2, "content": "astronaut face (push-in)"},
        {"start_s": 3.2, "end_s": 4.8, "content": "room_b (zoom)"},
        {"start_s": 4.8, "end_s": 6.0, "content": "moving stripes pattern"},
    ]
    return frames, shots


def encode_h264(path: Path, frames: list[np.ndarray], crf: int) -> str:
    """Write H.264/MP4 with PyAV; single-threaded and bitexact so the bytes are reproducible."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as out:
        st = out.add_stream(codec, rate=FPS)
        st.width, st.height = frames[0].shape[1], frames[0].shape[0]
        st.pix_fmt = "yuv420p"
        st.codec_context.thread_count = 1
        st.codec_context.flags |= av.codec.context.Flags.bitexact
        if codec == "libx264":
            st.codec_context.options = {"crf": str(crf), "preset": "medium"}
        for i, arr in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            out.mux(st.encode(frame))
        out.mux(st.encode(None))
    return codec


def reencode_small(src: Path, dst: Path, crf: int) -> None:
    """A derived copy: decode the original, downscale, re-encode (what a re-upload does)."""
    with av.open(str(src)) as inp:
        frames = [
            f.to_ndarray(format="rgb24", width=SMALL_VIDEO_SIZE[0], height=SMALL_VIDEO_SIZE[1])
            for f in inp.decode(video=0)
        ]
    encode_h264(dst, frames, crf)


# ----------------------------------------------------------------------------- folders


def make_photos(out: Path, facts: dict) -> np.ndarray:
    """Public-domain / CC0 photos from scikit-image; astronaut carries full EXIF (S/W hemisphere)."""
    astro = skimage.data.astronaut()
    blob, f = make_exif(GPS_RIO, "Canon", "Canon EOS R5", "032021001234", "2021:07:14 15:32:10", "-03:00")
    save_jpeg(out / "photos/astronaut.jpg", astro, exif=blob)
    facts["exif"]["photos/astronaut.jpg"] = f
    blob, f = make_exif(GPS_DEAD_SEA, "Apple", "iPhone 12", None, "2022:03:05 08:15:00")
    save_jpeg(out / "photos/coffee.jpg", skimage.data.coffee(), exif=blob)
    facts["exif"]["photos/coffee.jpg"] = f
    save_jpeg(out / "photos/chelsea.jpg", skimage.data.chelsea())
    hubble = cv2.resize(skimage.data.hubble_deep_field(), (500, 436), interpolation=cv2.INTER_AREA)
    save_jpeg(out / "photos/hubble_deep_field.jpg", hubble)
    return astro


def make_rooms(out: Path, rng: np.random.Generator, facts: dict) -> dict[str, np.ndarray]:
    """Two rendered hotel rooms, each from several viewpoints; returns the world canvases."""
    rooms = {"a": render_room_a(rng), "b": render_room_b(rng)}
    gps = {("a", "1"): GPS_VIENNA, ("a", "2"): GPS_VIENNA, ("b", "1"): GPS_SYDNEY}
    for room, views in (("a", "123"), ("b", "12")):
        for v in views:
            quad, gain, gamma = VIEWS[v]
            rel = f"rooms/room_{room}_{v}.jpg"
            blob = None
            if (room, v) in gps:
                when = f"2023:09:1{v} 21:05:00" if room == "a" else f"2023:10:0{v} 07:30:00"
                blob, f = make_exif(gps[(room, v)], dt_original=when)
                facts["exif"][rel] = f
            save_jpeg(out / rel, view(rooms[room], quad, VIEW_SIZE, gain, gamma, rng), exif=blob)
    return rooms


def make_near_dups(out: Path, facts: dict) -> None:
    """Rocket photo (public domain, SpaceX) plus edited copies; the base has N/W GPS without altitude."""
    d = out / "near_dups"
    base = cv2.resize(skimage.data.rocket(), (480, 320), interpolation=cv2.INTER_AREA)
    blob, f = make_exif(GPS_CAPE_CANAVERAL)
    save_jpeg(d / "rocket.jpg", base, exif=blob)
    facts["exif"]["near_dups/rocket.jpg"] = facts["exif"]["near_dups/rocket_copy.jpg"] = f
    px = jpeg_roundtrip(d / "rocket.jpg")
    h, w = px.shape[:2]
    save_jpeg(d / "rocket_q25.jpg", px, quality=LOW_QUALITY)
    save_jpeg(d / "rocket_half.jpg", np.asarray(Image.fromarray(px).resize((w // 2, h // 2), Image.LANCZOS)))
    save_jpeg(d / "rocket_crop2.jpg", px[h // 100 : h - h // 100, w // 100 : w - w // 100])
    save_jpeg(d / "rocket_crop10.jpg", px[h // 20 : h - h // 20, w // 20 : w - w // 20])
    save_jpeg(d / "rocket_bright.jpg", np.asarray(ImageEnhance.Brightness(Image.fromarray(px)).enhance(1.2)))
    save_jpeg(d / "rocket_flip.jpg", px[:, ::-1])
    Image.fromarray(px).save(d / "rocket.png", "PNG", optimize=True)
    shutil.copyfile(d / "rocket.jpg", d / "rocket_copy.jpg")


def make_misc(out: Path, astro: np.ndarray, room_b: np.ndarray, rng: np.random.Generator) -> None:
    """Broken and awkward inputs, plus a zip archive whose members exist nowhere else."""
    d = out / "misc"
    d.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(cv2.resize(astro, (384, 384), interpolation=cv2.INTER_AREA)).save(
        buf, "JPEG", quality=JPEG_QUALITY, optimize=True, subsampling=2
    )
    data = buf.getvalue()
    (d / "truncated.jpg").write_bytes(data[: int(len(data) * 0.6)])  # no EOI; top ~half decodes
    (d / "empty.jpg").write_bytes(b"")
    (d / "fake.jpg").write_text(
        "This is plain text with a .jpg name: vidpipe must sniff the content, "
        "record the type mismatch and not decode it as an image.\n"
    )
    quad, gain, gamma = VIEWS["3"]
    members = {}
    for name, rgb in (
        ("portrait.jpg", astro[15:239, 115:339]),
        ("trip/day2/room_b_3.jpg", view(room_b, quad, VIEW_SIZE, gain, gamma, rng)),
    ):
        b = io.BytesIO()
        Image.fromarray(rgb).save(b, "JPEG", quality=JPEG_QUALITY, optimize=True, subsampling=2)
        members[name] = b.getvalue()
    with zipfile.ZipFile(d / "archive.zip", "w") as zf:
        for name, payload in members.items():
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.create_system = 3  # unix, regardless of the host that runs this
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, payload)


def make_video(out: Path, rooms: dict[str, np.ndarray], astro: np.ndarray, facts: dict) -> None:
    """The main clip with hard cuts and a downscaled, re-encoded copy of it."""
    d = out / "video"
    d.mkdir(parents=True, exist_ok=True)
    frames, shots = video_frames(rooms["a"], rooms["b"], astro)
    codec = encode_h264(d / "clip.mp4", frames, crf=26)
    reencode_small(d / "clip.mp4", d / "clip_small.mp4", crf=32)
    facts["video"] = {
        "video/clip.mp4": {
            "codec": codec,
            "fps": FPS,
            "frames": len(frames),
            "duration_s": len(frames) / FPS,
            "size": list(VIDEO_SIZE),
            "cuts_s": [s["start_s"] for s in shots[1:]],
            "shots": shots,
        },
        "video/clip_small.mp4": {
            "codec": codec,
            "fps": FPS,
            "frames": len(frames),
            "size": list(SMALL_VIDEO_SIZE),
            "derived_from": "video/clip.mp4",
        },
    }


def expected_facts(facts: dict) -> dict:
    """Relations between the files that tests and the demo can check."""
    facts["near_dups"] = {
        "base": "near_dups/rocket.jpg",
        "byte_identical": ["near_dups/rocket_copy.jpg"],
        "pixel_identical": ["near_dups/rocket.png"],
        "edited": {
            "near_dups/rocket_q25.jpg": f"re-encoded at JPEG quality {LOW_QUALITY}",
            "near_dups/rocket_half.jpg": "resized to half (240x160)",
            "near_dups/rocket_crop2.jpg": "central crop, 1% off each side (98% of width and height)",
            "near_dups/rocket_crop10.jpg": "central crop, 5% off each side (90% of width and height); "
            "beyond PDQ's crop tolerance (measured distance ~128)",
            "near_dups/rocket_bright.jpg": "brightness x1.2",
            "near_dups/rocket_flip.jpg": "mirrored left-right (matches only flip-aware hashing)",
        },
    }
    facts["scene_groups"] = {
        "room_a": [
            "rooms/room_a_1.jpg",
            "rooms/room_a_2.jpg",
            "rooms/room_a_3.jpg",
            "video/clip.mp4@0.0-1.6s",
        ],
        "room_b": [
            "rooms/room_b_1.jpg",
            "rooms/room_b_2.jpg",
            "misc/archive.zip!trip/day2/room_b_3.jpg",
            "video/clip.mp4@3.2-4.8s",
        ],
    }
    facts["faces"] = {
        "same_person": [
            "photos/astronaut.jpg",
            "misc/archive.zip!portrait.jpg",
            "video/clip.mp4@1.6-3.2s",
            "misc/truncated.jpg (partial, top part)",
        ],
        "no_face": [
            "photos/coffee.jpg",
            "photos/chelsea.jpg (a cat)",
            "photos/hubble_deep_field.jpg",
            "every file in rooms/ and near_dups/",
            "video/clip.mp4 outside 1.6-3.2s",
        ],
    }
    facts["broken"] = {
        "misc/truncated.jpg": "partial (JPEG cut at 60% of its bytes, no EOI marker)",
        "misc/empty.jpg": "failed: zero-byte file",
        "misc/fake.jpg": "plain text named .jpg: type mismatch, not an image",
    }
    facts["archive"] = {"misc/archive.zip": ["portrait.jpg", "trip/day2/room_b_3.jpg"]}
    return facts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "sample_media")
    out = ap.parse_args().out
    rng = np.random.default_rng(SEED)
    facts: dict = {"generator": "tools/make_sample_media.py", "seed": SEED, "exif": {}}
    astro = make_photos(out, facts)
    rooms = make_rooms(out, rng, facts)
    make_near_dups(out, facts)
    make_misc(out, astro, rooms["b"], rng)
    make_video(out, rooms, astro, facts)
    facts["no_exif"] = sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.suffix in (".jpg", ".png")
        and p.parent.name != "misc"
        and str(p.relative_to(out)) not in facts["exif"]
    )
    (out / "EXPECTED.json").write_text(json.dumps(expected_facts(facts), indent=2) + "\n")
    for p in sorted(q for q in out.rglob("*") if q.is_file()):
        print(f"{p.stat().st_size:>9}  {p.relative_to(out)}")


if __name__ == "__main__":
    main()
