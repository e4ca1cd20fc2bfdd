"""EXIF metadata of one image file, read with exifread under byte, call and wall-clock caps.

Runs inside a sandboxed worker. Every failure is a warning in the returned record, never an
exception: a bad tag loses that tag (or the MakerNote, or the EXIF), never the file.
Containers: JPEG, TIFF and TIFF-based RAW (DNG, NEF, CR2, ARW, ORF, RW2, ...), HEIC/HEIF/AVIF,
PNG ``eXIf``, WebP ``EXIF``, JPEG XL, RAF (embedded JPEG) and CR3 (CMT1..CMT4 TIFF blobs).

GPS policy: degrees/minutes/seconds become signed decimal degrees from the N/S/E/W references;
a missing reference, a zero denominator or an impossible value gives ``gps=None`` plus a warning.
An exact (0, 0) fix is kept but flagged ``gps_null_island``: it is usually a bogus fix, and the
examiner must see it rather than have it silently dropped.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import signal
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import exifread

from vidpipe.extract import isobmff

EXIF_TIMEOUT_S = 5.0  # brief: ~5 s; the slowest real file of exif-py's corpus takes ~0.3 s
MAX_READ_BYTES = 64 << 20  # brief: never read more than 64 MiB for metadata
MAX_READ_CALLS = 500_000  # ~2 s of exifread; the busiest exif-py corpus file makes 74 k reads
MAX_EMPTY_READS = 200_000  # reads at end of data (a bogus tag count); exif-py corpus max: 38 k
BLOB_CAP = 8 << 20  # CR3 CMTn boxes are a few KiB to ~100 KiB (ExifTool Canon CR3 notes)
_ISOBMFF = {"HEIC", "HEIF", "AVIF"}
_EXIFREAD_LABELS = {"JPEG", "TIFF", "PNG", "JXL", "DNG", "NEF", "NRW", "CR2", "ARW", "SR2", "SRF", "ORF",
                    "RW2", "PEF", "SRW", "3FR", "ERF", "KDC", "MOS", "IIQ"} | _ISOBMFF
_DATE = re.compile(r"\d{4}[:\-/.]\d{2}[:\-/.]\d{2}[ T]\d{2}:\d{2}:\d{2}")  # raw value kept; non-dates rejected
_NOT_A_PROBLEM = ("does not have exif data", "File format not recognized")  # "no EXIF" is not a warning


@dataclass
class ExifRecord:
    """Normalised EXIF of one file; ``None`` means unknown (absent or rejected), never a guess."""

    make: str | None = None
    model: str | None = None
    serial: str | None = None  # body serial: BodySerialNumber, else MakerNote (Internal)SerialNumber
    lens: str | None = None
    lens_serial: str | None = None
    software: str | None = None
    datetime_original: str | None = None  # raw "YYYY:MM:DD HH:MM:SS" as stored
    offset_time: str | None = None  # OffsetTimeOriginal, else OffsetTime
    gps: dict | None = None  # {"lat", "lon" (signed decimal degrees), "alt" (metres or None)}
    orientation: int | None = None  # 1..8
    width: int | None = None  # EXIF PixelXDimension (IFD0 sizes of RAW files describe previews)
    height: int | None = None  # EXIF PixelYDimension
    warnings: list[str] = field(default_factory=list)

    def to_contract(self) -> dict:
        """The ``exif`` object of the export contract (DESIGN.md section 2) plus lens/software/orientation."""
        return {"make": self.make, "model": self.model, "serial": self.serial,
                "datetime_original": self.datetime_original, "offset_time": self.offset_time,
                "gps": dict(self.gps) if self.gps else None, "lens": self.lens,
                "software": self.software, "orientation": self.orientation}


def read_exif(path_or_fileobj: str | os.PathLike | BinaryIO | bytes, label: str, *,
              timeout_s: float = EXIF_TIMEOUT_S) -> ExifRecord:
    """Read and normalise the EXIF of one file whose sniffed format label is ``label``.

    ``timeout_s`` is enforced with SIGALRM when called from the main thread (the worker case);
    elsewhere only the byte and read-call budgets bound the work.
    """
    warnings: list[str] = []
    try:
        with _opened(path_or_fileobj) as fh, _capture_warnings(warnings), _deadline(timeout_s):
            src = _Source(fh, fh.seek(0, io.SEEK_END), _Budget(), warnings)
            tags = _tags_for(src, label.upper())
    except _Timeout:
        return ExifRecord(warnings=_dedupe([*warnings, "exif_timeout"]))
    except OSError as err:  # unreadable input; the file-level stage reports the file itself
        return ExifRecord(warnings=_dedupe([*warnings, f"exif_unreadable: {type(err).__name__}"]))
    tags = {k.strip(): v for k, v in tags.items() if isinstance(k, str)}
    record = _record_from_tags(tags, warnings)
    record.warnings = _dedupe(warnings)
    return record


# ---- guards: wall clock, byte/call budgets, exifread's log warnings -------------------------

class _Timeout(BaseException):
    """Wall-clock cap reached; a BaseException so that exifread's own handlers cannot swallow it."""


class _Exhausted(BaseException):
    """A read budget ran out (same reason for BaseException)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Budget:
    """Bytes left for the whole call; read calls left for the current parse attempt."""

    def __init__(self) -> None:
        self.bytes = MAX_READ_BYTES
        self.new_pass()

    def new_pass(self) -> None:
        self.calls, self.empty = MAX_READ_CALLS, MAX_EMPTY_READS
        self.past_end = 0  # reads wanting bytes beyond the data (not counting sniffs at offset 0)


class _Window:
    """Read-only view of ``fh[start:start+length]`` that charges every read to a budget."""

    def __init__(self, fh: BinaryIO, start: int, length: int, budget: _Budget) -> None:
        self._fh, self._start, self._len, self._budget, self._pos = fh, start, max(0, length), budget, 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self._len
        self._pos = offset if offset > 0 else 0
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        budget, pos = self._budget, self._pos
        avail = self._len - pos if self._len > pos else 0
        if n is None or n < 0 or n > avail:
            budget.past_end += n is not None and n > avail and pos > 0
            n = avail
        budget.calls -= 1
        if budget.calls < 0:
            raise _Exhausted("read_calls_exceeded")
        if n == 0:
            budget.empty -= 1
            if budget.empty < 0:
                raise _Exhausted("reads_past_end")
            return b""
        budget.bytes -= n
        if budget.bytes < 0:
            raise _Exhausted("read_cap_exceeded")
        self._fh.seek(self._start + pos)
        data = self._fh.read(n)
        self._pos = pos + len(data)
        return data


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise ``_Timeout`` in the body after ``seconds`` (main thread only; signals need it)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = True

    def on_alarm(signum: int, frame: object) -> None:
        if armed:
            raise _Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        if old_delay > 0:  # hand back an outer alarm (pytest-timeout, a worker watchdog), minus our time
            left = max(old_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call must not break the parse
            msg = str(record.msg)
        if not any(s in msg for s in _NOT_A_PROBLEM):
            self.sink.append(f"exifread: {msg[:160]}")


@contextmanager
def _capture_warnings(sink: list[str]) -> Iterator[None]:
    """Turn exifread's log warnings into record warnings for the duration of one read."""
    logger = logging.getLogger("exifread")
    saved = logger.level, logger.propagate
    handler = _ListHandler(sink)
    logger.addHandler(handler)
    logger.propagate = False  # they are data in the record now, not stderr noise
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _opened(src: str | os.PathLike | BinaryIO | bytes) -> Any:
    if isinstance(src, bytes | bytearray | memoryview):
        return nullcontext(io.BytesIO(bytes(src)))
    if isinstance(src, str | os.PathLike):
        return open(src, "rb")
    return nullcontext(src)


def _dedupe(warnings: list[str], limit: int = 20) -> list[str]:
    unique = list(dict.fromkeys(warnings))
    return unique if len(unique) <= limit else [*unique[:limit], "exif_warnings_truncated"]


# ---- containers ------------------------------------------------------------------------------

@dataclass
class _Source:
    """The file being read, its size, the call's read budget and its warnings."""

    fh: BinaryIO
    size: int
    budget: _Budget
    warnings: list[str]

    def view(self, start: int = 0, length: int | None = None) -> BinaryIO:
        length = self.size - start if length is None else length
        return cast(BinaryIO, _Window(self.fh, start, length, self.budget))

    def read_at(self, offset: int, n: int) -> bytes:
        return self.view(offset, n).read(n)


def _tags_for(src: _Source, label: str) -> dict[str, Any]:
    head = src.read_at(0, 16)
    if label == "CR3" or head[4:12] == b"ftypcrx ":
        return _cr3_tags(src)
    if label == "RAF" or head.startswith(b"FUJIFILMCCD-RAW"):
        return _raf_tags(src)
    if label == "WEBP" or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return _webp_tags(src)
    if label not in _EXIFREAD_LABELS:
        return {}  # GIF, BMP, PSD, video, ...: no EXIF container that we read
    if label in _ISOBMFF:  # exifread alone knows only major brands heic/avif/mif1 with minor 0
        item = isobmff.heif_exif_item(src.view(), src.size)
        tags = _heif_item_tags(src, item) if item is not None else {}
        if tags:
            return tags
    tags = _run_exifread(src, 0, src.size)
    if not tags and label == "JPEG" and b"Exif\x00\x00" in src.read_at(0, 1 << 17):
        src.warnings.append("exif_segment_unreadable")  # an APP1 EXIF header, but nothing parsed
    return tags


def _run_exifread(src: _Source, start: int, length: int) -> dict[str, Any]:
    """exifread over ``src[start:start+length]``; retried without MakerNotes when they break it."""
    for details in (True, False):
        src.budget.new_pass()
        try:
            tags = exifread.process_file(src.view(start, length), details=details, extract_thumbnail=False)
        except _Exhausted as err:
            src.warnings.append(f"exif_{err.reason}")
            continue
        except Exception as err:  # noqa: BLE001 - exifread raises anything on hostile input
            src.warnings.append(f"exif_error: {type(err).__name__}: {str(err)[:120]}")
            continue
        if not details:
            src.warnings.append("exif_makernote_skipped")
        if src.budget.past_end:  # a value or IFD lies (partly) beyond the data: truncated or corrupt
            src.warnings.append(f"exif_offsets_past_end: {src.budget.past_end} reads")
        return dict(tags)
    return {}


def _heif_item_tags(src: _Source, item: tuple[int, int, int]) -> dict[str, Any]:
    offset, length, n_extents = item
    if n_extents > 1:
        src.warnings.append("exif_heif_item_fragmented")
    head = src.read_at(offset, 4)
    skip = 4 + struct.unpack(">I", head)[0] if len(head) == 4 else length  # ISO/IEC 23008-12 A.2.1
    if skip >= length:
        src.warnings.append("exif_heif_item_invalid")
        return {}
    return _run_exifread(src, offset + skip, length - skip)


def _raf_tags(src: _Source) -> dict[str, Any]:
    # RAF header: big-endian JPEG preview offset and length at bytes 84..91 (ExifTool FujiFilm RAF).
    head = src.read_at(84, 8)
    offset, length = struct.unpack(">II", head) if len(head) == 8 else (src.size, 0)
    if offset >= src.size or length == 0:
        src.warnings.append("exif_raf_header_invalid")
        return {}
    return _run_exifread(src, offset, min(length, src.size - offset))


def _webp_tags(src: _Source) -> dict[str, Any]:
    # exifread 3.5.1 expects an "Exif\0\0" prefix in the chunk, but the WebP container spec puts
    # the bare TIFF stream there (Pillow writes it so); find the chunk ourselves and accept both.
    pos = 12
    for _ in range(isobmff.MAX_BOXES):
        head = src.read_at(pos, 8)
        if len(head) < 8:
            return {}
        length = struct.unpack("<I", head[4:])[0]
        if head[:4] == b"EXIF":
            start, length = pos + 8, min(length, src.size - pos - 8)
            if src.read_at(start, 6) == b"Exif\x00\x00":
                start, length = start + 6, length - 6
            return _run_exifread(src, start, length)
        pos += 8 + length + (length & 1)  # RIFF chunks are padded to an even size
    return {}


def _cr3_tags(src: _Source) -> dict[str, Any]:
    """Parse CMT1 (IFD0), CMT2 (EXIF IFD), CMT4 (GPS IFD) and CMT3 (Canon MakerNote)."""
    blobs = isobmff.cr3_exif_blobs(src.view(), src.size)
    if "CMT1" not in blobs:
        src.warnings.append("exif_cr3_no_cmt1")
        return {}
    tags: dict[str, Any] = {}
    for name, keep, wrap in (("CMT1", "Image ", None), ("CMT2", "EXIF ", 0x8769),
                             ("CMT4", "GPS ", 0x8825), ("CMT3", "MakerNote ", 0x927C)):
        offset, length = blobs.get(name, (0, 0))
        blob = src.read_at(offset, length) if 8 <= length <= BLOB_CAP else b""
        if name in blobs and blob[:2] not in (b"II", b"MM"):
            src.warnings.append(f"exif_cr3_{name}_invalid")
        if blob[:2] not in (b"II", b"MM"):
            continue
        if wrap is not None:
            blob = _wrap_ifd(blob, wrap, _text(tags.get("Image Make")) or "")
        parsed = _run_exifread(_Source(io.BytesIO(blob), len(blob), src.budget, src.warnings), 0, len(blob))
        tags.update({k: v for k, v in parsed.items() if k.startswith(keep)})
    return tags


def _wrap_ifd(blob: bytes, pointer_tag: int, make: str) -> bytes:
    """Make a bare sub-IFD TIFF blob look like a whole TIFF to exifread.

    A stub IFD0, appended after the unmoved blob (so its own offsets stay valid), points at the
    blob's first IFD via ExifOffset (0x8769) or GPSInfo (0x8825), so exifread names the tags
    "EXIF ..." or "GPS ...". For a MakerNote (0x927C) the stub carries Make and an EXIF IFD with
    a MakerNote tag, which is what exifread's maker-specific decoders look for.
    """
    end = "<" if blob[:2] == b"II" else ">"
    first_ifd = struct.unpack(end + "I", blob[4:8])[0]
    out = bytearray(blob + b"\x00" * (len(blob) & 1))

    def add_ifd(entries: list[tuple[int, int, int, int]]) -> int:
        at = len(out)
        out.extend(struct.pack(end + "H", len(entries)))
        for tag, kind, count, value in entries:
            out.extend(struct.pack(end + "HHII", tag, kind, count, value))
        out.extend(b"\x00\x00\x00\x00")
        return at

    if pointer_tag == 0x927C:
        make_bytes = make.encode("latin-1", "replace")[:64] + b"\x00"
        make_at = len(out)
        out.extend(make_bytes + b"\x00" * (len(make_bytes) & 1))
        exif_at = add_ifd([(0x927C, 7, 8, first_ifd)])  # UNDEFINED x 8: > 4 bytes, so an offset
        ifd0 = add_ifd([(0x010F, 2, len(make_bytes), make_at), (0x8769, 4, 1, exif_at)])
    else:
        ifd0 = add_ifd([(pointer_tag, 4, 1, first_ifd)])
    out[4:8] = struct.pack(end + "I", ifd0)
    return bytes(out)


# ---- normalisation ---------------------------------------------------------------------------

def _text(tag: Any) -> str | None:
    """A tag's value as stripped text; empty -> None."""
    values = getattr(tag, "values", tag)
    if isinstance(values, bytes | bytearray):
        s = bytes(values).split(b"\x00")[0].decode("latin-1")
    elif isinstance(values, str):
        s = values
    elif isinstance(values, list) and values and all(isinstance(v, int) for v in values):
        if len(values) == 1:
            s = str(values[0])
        elif getattr(tag, "field_type", None) in (1, 7) and all(0 <= v < 256 for v in values):
            s = bytes(values).split(b"\x00")[0].decode("latin-1")  # BYTE/UNDEFINED text
        else:
            return None
    else:
        return None
    return s.strip(" \x00\t\r\n") or None


def _bogus(tag: Any, value: str) -> bool:
    """Text that cannot be a stored value: control bytes, or data 'stored' over the TIFF header
    (exifread reads offset 0 when a value's offset field lies beyond truncated data)."""
    if getattr(tag, "field_length", 0) > 4 and getattr(tag, "field_offset", None) == 0:
        return True
    return any(ord(c) < 32 and c not in "\t\r\n" for c in value)


def _int(tag: Any) -> int | None:
    values = getattr(tag, "values", None)
    return values[0] if isinstance(values, list) and values and isinstance(values[0], int) else None


def _record_from_tags(tags: dict[str, Any], warnings: list[str]) -> ExifRecord:
    def first(*keys: str) -> str | None:
        for key in keys:
            value = _text(tags.get(key))
            if value is not None and _bogus(tags[key], value):
                warnings.append(f"exif_value_invalid: {key}")
            elif value is not None:
                return value
        return None

    rec = ExifRecord(
        make=first("Image Make"), model=first("Image Model"),
        serial=first("EXIF BodySerialNumber", "MakerNote SerialNumber", "MakerNote InternalSerialNumber"),
        lens=first("EXIF LensModel"), lens_serial=first("EXIF LensSerialNumber"),
        software=first("Image Software"), datetime_original=first("EXIF DateTimeOriginal"),
        offset_time=first("EXIF OffsetTimeOriginal", "EXIF OffsetTime"))
    stamp = rec.datetime_original
    if stamp is not None and not any(c in "123456789" for c in stamp):
        warnings.append(f"datetime_unknown: {stamp!r}")  # EXIF 2.32: blanks (or zeros) = unknown
        rec.datetime_original = None
    elif stamp is not None and not _DATE.match(stamp):
        warnings.append(f"datetime_invalid: {stamp[:40]!r}")
        rec.datetime_original = None
    orientation = _int(tags.get("Image Orientation"))
    if orientation is not None and not 1 <= orientation <= 8:
        warnings.append(f"orientation_invalid: {orientation}")
        orientation = None
    rec.orientation = orientation
    width, height = _int(tags.get("EXIF ExifImageWidth")), _int(tags.get("EXIF ExifImageLength"))
    rec.width = width if width and width > 0 else None
    rec.height = height if height and height > 0 else None
    rec.gps = _gps(tags, warnings)
    return rec


def _number(value: Any) -> float | None:
    """A rational/int/float EXIF value as a finite float; None for 0 denominators and NaN."""
    if isinstance(value, tuple):  # exifread wraps FLOAT/DOUBLE values in 1-tuples
        value = value[0] if value else None
    if getattr(value, "denominator", 1) == 0:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _degrees(tag: Any) -> float | None:
    values = getattr(tag, "values", None)
    if not isinstance(values, list) or not 1 <= len(values) <= 3:
        return None
    parts = [_number(v) for v in values]
    if any(p is None or p < 0 for p in parts):
        return None
    return sum(cast(float, p) / 60**i for i, p in enumerate(parts))


def _gps(tags: dict[str, Any], warnings: list[str]) -> dict | None:
    lat_tag, lon_tag = tags.get("GPS GPSLatitude"), tags.get("GPS GPSLongitude")
    if lat_tag is None and lon_tag is None:
        return None
    lat, lon = _degrees(lat_tag), _degrees(lon_tag)
    lat_ref = (_text(tags.get("GPS GPSLatitudeRef")) or "").upper()[:1]
    lon_ref = (_text(tags.get("GPS GPSLongitudeRef")) or "").upper()[:1]
    if lat is None or lon is None:
        warnings.append("gps_invalid: missing value or zero denominator")
        return None
    if lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        warnings.append(f"gps_invalid: hemisphere reference {lat_ref or '-'}/{lon_ref or '-'}")
        return None
    lat, lon = (-lat if lat_ref == "S" else lat), (-lon if lon_ref == "W" else lon)
    if abs(lat) > 90 or abs(lon) > 180:
        warnings.append(f"gps_invalid: out of range ({lat:.6f}, {lon:.6f})")
        return None
    alt = None
    alt_tag = tags.get("GPS GPSAltitude")
    if alt_tag is not None:
        values = getattr(alt_tag, "values", None)
        alt = _number(values[0]) if isinstance(values, list) and values else None
        if alt is None:
            warnings.append("gps_altitude_invalid")
        elif _int(tags.get("GPS GPSAltitudeRef")) == 1:  # 1 = below sea level (EXIF 2.32)
            alt = -alt
    if lat == 0 and lon == 0:
        warnings.append("gps_null_island")
    return {"lat": lat, "lon": lon, "alt": alt}
