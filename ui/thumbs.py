"""Small derived thumbnails and face crops, made from evidence in sandboxed workers.

The browser never receives an evidence file: the UI shows only JPEGs made here, from pixels
the safe decoder produced (format allowlist, pixel budget, EXIF orientation applied), resized
to at most ``THUMB_MAX_SIDE`` and re-encoded without any metadata. Decoding untrusted bytes
happens in a separate worker process (memory cap, time limit), never in the web server process.
Results are cached under ``CASE/thumbs/<key>.jpg`` with a ``<key>.json`` sidecar giving the size
of the upright source, so face boxes (stored in source pixels) can be drawn to scale.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from PIL import Image

from vidpipe.store.queries.paths import first_source

THUMB_MAX_SIDE = 320   # the bound for thumbnails
CROP_MAX_SIDE = 160    # face crops for face-only review
ZOOM_MAX_SIDE = 1280   # the bigger derivative a reviewer opens on demand (zoom dialog), same sandbox
CROP_MARGIN = 0.25     # context around a face box, as a share of the box side
JPEG_QUALITY = 80
READ_CAP_BYTES = 512 * 1024**2   # largest evidence item read for a thumbnail
MAX_VIDEO_FRAMES = 3000          # frames decoded at most to reach a requested time
WORKER_MEMORY_BYTES = 3 * 1024**3  # address-space cap of the decoding process (a 200 MP image fits)
_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ThumbRequest:
    """One thumbnail to make: which bytes, how to decode them, what part to keep."""

    key: str                  # file stem under thumbs/
    ref: bytes                # ItemRef blob: file path, then archive member names
    label: str                # sniffed format label (JPEG, PNG, MP4, ...)
    kind: str                 # image | video
    video_time_s: float | None = None
    box: tuple[float, float, float, float] | None = None   # crop, in upright source pixels
    max_side: int | None = None  # longest side; None: THUMB_MAX_SIDE (CROP_MAX_SIDE for a crop)


@dataclass(frozen=True)
class Thumb:
    """A cached thumbnail and the upright source size it was made from."""

    path: Path
    src_w: int
    src_h: int


def request_for_media(conn: sqlite3.Connection, sha256: str, video_time_s: float | None = None,
                      box: tuple[float, float, float, float] | None = None) -> ThumbRequest | None:
    """The request for a media item of the case (its first path), or None when it has no image."""
    row = first_source(conn, sha256)
    if row is None or row["kind"] not in ("image", "video"):
        return None
    return ThumbRequest(_key(sha256, video_time_s, box), bytes(row["ref"]), row["label"], row["kind"],
                        video_time_s, box)


def request_for_file(path: Path, sha256: str, label: str, kind: str, video_time_s: float | None = None,
                     box: tuple[float, float, float, float] | None = None) -> ThumbRequest:
    """The request for a file outside the evidence (an uploaded query)."""
    return ThumbRequest(_key(sha256, video_time_s, box), os.fsencode(path), label, kind, video_time_s, box)


def zoom_request(r: ThumbRequest, side: int = ZOOM_MAX_SIDE) -> ThumbRequest:
    """The same picture as ``r``, at most ``side`` pixels on its longest side, cached under its own key."""
    return replace(r, key=f"{r.key}_z{side}", max_side=side)


def _key(sha256: str, video_time_s: float | None, box: tuple[float, float, float, float] | None) -> str:
    key = sha256
    if video_time_s is not None:
        key += f"_t{round(video_time_s * 1000)}"
    if box is not None:
        key += "_c" + "_".join(str(round(v)) for v in box)
    return key


def cached(thumb_dir: Path, key: str) -> Thumb | None:
    """A thumbnail already made, or None."""
    jpg, meta = thumb_dir / f"{key}.jpg", thumb_dir / f"{key}.json"
    if not (jpg.exists() and meta.exists()):
        return None
    try:
        info = json.loads(meta.read_text())
        return Thumb(jpg, int(info["src_w"]), int(info["src_h"]))
    except (ValueError, KeyError, OSError):
        return None


def ensure_thumbs(thumb_dir: Path, requests: list[ThumbRequest], timeout_s: float = 60.0) -> dict[str, Thumb | None]:
    """Make every missing thumbnail in a separate, memory-capped process; map each key to its thumb.

    A key maps to None when its item could not be decoded (or the worker died or ran out of time).
    One worker process per call: its start-up costs less than a decode, and nothing of the web
    server (its threads, its Streamlit ``__main__``) is inherited by the process that decodes.
    """
    out: dict[str, Thumb | None] = {r.key: cached(thumb_dir, r.key) for r in requests}
    missing = list({r.key: r for r in requests if out[r.key] is None}.values())
    if not missing:
        return out
    thumb_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lines = "".join(json.dumps({**asdict(r), "ref": r.ref.hex()}) + "\n" for r in missing)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(_REPO_ROOT), os.environ.get("PYTHONPATH"))
                                                       if p)}
    try:
        subprocess.run([sys.executable, "-m", "ui.thumbs", str(thumb_dir)], input=lines.encode(),
                       capture_output=True, timeout=timeout_s + 5 * len(missing), env=env, cwd=_REPO_ROOT,
                       check=False)
    except subprocess.TimeoutExpired:
        pass  # whatever was finished is cached; the rest has no preview
    for r in missing:
        out[r.key] = cached(thumb_dir, r.key)
    return out


def _worker_main(out_dir: str) -> int:
    """``python -m ui.thumbs OUT_DIR``: read requests (JSON lines) on stdin, write thumbnails."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    failed = 0
    for line in sys.stdin:
        fields = json.loads(line)
        fields["ref"] = bytes.fromhex(fields["ref"])
        fields["box"] = tuple(fields["box"]) if fields["box"] else None
        try:
            make_thumb(ThumbRequest(**fields), Path(out_dir))
        except Exception as exc:  # noqa: BLE001 - one bad item costs its own preview only
            failed += 1
            print(f"{fields['key']}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def make_thumb(r: ThumbRequest, out_dir: Path) -> str:
    """Decode, orient, crop or shrink one item, and write the JPEG and its sidecar; returns the key."""
    from vidpipe.sources.base import ItemRef
    from vidpipe.sources.limits import ArchiveLimits
    from vidpipe.sources.opener import open_item, read_capped

    with open_item(ItemRef.from_blob(r.ref), ArchiveLimits()) as stream:
        data = read_capped(stream, READ_CAP_BYTES)
    if r.kind == "video":
        img = _video_frame(data, r.video_time_s or 0.0)
    else:
        from vidpipe.decode.image import decode_image

        # A crop needs the full resolution; a whole-image thumbnail can use the reduced decode.
        decoded = decode_image(data, r.label, reduce_for_hashing=r.box is None,
                               min_side=r.max_side or THUMB_MAX_SIDE)
        img = decoded.upright()
        if r.box is None:
            src_w, src_h = decoded.width, decoded.height
            if decoded.orientation in (5, 6, 7, 8):
                src_w, src_h = src_h, src_w
            return _write(r, out_dir, img, src_w, src_h)
    src_w, src_h = img.size
    if r.box is not None:
        img = _crop(img, r.box, r.max_side or CROP_MAX_SIDE)
    return _write(r, out_dir, img, src_w, src_h)


def _crop(img: Image.Image, box: tuple[float, float, float, float], side: int = CROP_MAX_SIDE) -> Image.Image:
    x1, y1, x2, y2 = box
    margin = CROP_MARGIN * max(x2 - x1, y2 - y1)
    left, top = max(0, int(x1 - margin)), max(0, int(y1 - margin))
    right, bottom = min(img.width, int(x2 + margin) + 1), min(img.height, int(y2 + margin) + 1)
    if right <= left or bottom <= top:
        raise ValueError(f"face box {box} lies outside the image")
    crop = img.crop((left, top, right, bottom))
    crop.thumbnail((side, side))
    return crop


def _video_frame(data: bytes, t: float) -> Image.Image:
    from vidpipe.video.frame_at import frame_at

    return frame_at(data, t, MAX_VIDEO_FRAMES)


def _write(r: ThumbRequest, out_dir: Path, img: Image.Image, src_w: int, src_h: int) -> str:
    key = r.key
    if r.box is None:
        side = r.max_side or THUMB_MAX_SIDE
        img.thumbnail((side, side))
    # A fresh image from raw pixels carries no EXIF, XMP, ICC or comment from the source.
    clean = Image.frombytes("RGB", img.size, img.convert("RGB").tobytes())
    buf = io.BytesIO()
    clean.save(buf, "JPEG", quality=JPEG_QUALITY)
    _atomic_write(out_dir / f"{key}.jpg", buf.getvalue())
    _atomic_write(out_dir / f"{key}.json", json.dumps({"src_w": src_w, "src_h": src_h}).encode())
    return key


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1]))
