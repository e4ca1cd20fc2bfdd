"""Hostile-input corpus: the broken, lying and dangerous files an evidence drive can hold.

``build_hostile_corpus(root)`` writes every case into ``root`` (a few MB, well under 10 s) and
returns, per path relative to ``root``, the final states the pipeline may give it. Archive members
are keyed ``"archives/x.zip!member"``, the way ``vidpipe export`` names them. Everything is made in
code and seeded, so the corpus is byte-identical on every run and needs no network.

Findings that decided expectations (measured with Pillow 13.0.0, exifread 3.5.1, see the
bad-input report):
- JPEG cut inside the entropy-coded data: Pillow raises "image file is truncated"; with
  ``LOAD_TRUNCATED_IMAGES`` it returns the image with the missing part grey (pixels recovered in
  proportion to the bytes kept). So: partial(truncated) or failed, never ok.
- JPEG missing only its EOI marker (cut 1 or 2 bytes short): Pillow still raises in strict mode,
  but every pixel decodes identically to the intact file. Nothing of the picture is lost, so ok
  or partial(truncated) are both honest; failed would throw away a complete picture.
- PNG missing only IEND (or part of IEND): Pillow loads it strictly, pixels identical, every IDAT
  CRC and the zlib Adler-32 are present and were checked. ok or partial(truncated).
- PNG missing the zlib Adler-32 and/or the IDAT CRC: Pillow 13 loads it *without any error* and
  the pixels are identical, yet bytes that guard the picture's integrity are gone. The file is
  truncated and the examiner must be told: partial(truncated) or failed, never ok. A pipeline
  that trusts Pillow's silence gets this wrong; it has to check the PNG chunk structure itself.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import os
import random
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

# ---------------------------------------------------------------------------------------------
# Reason vocabulary: the names in the bad-input brief, plus the pipeline's more specific names
# for the same finding (vidpipe/sources/archive.py, vidpipe/pipeline/tasks.py). Reason sets are
# fnmatch patterns, so "not_media:*" covers "not_media:M3U".
# ---------------------------------------------------------------------------------------------
DECODE_ERROR = "decode_error"
TRUNCATED = "truncated"
FORMAT_NOT_ALLOWED = "format_not_allowed"
BOMB_LIMIT = "bomb_limit"
UNSAFE_MEMBER = "unsafe_member_name"
ENCRYPTED = "encrypted"
SYMLINK = "symlink"
NOT_REGULAR = "not_regular_file"
EMPTY_FILE = "empty_file"
NOT_MEDIA = "not_media:*"  # recognised, not a media type: skipped, never decoded
# A decompression bomb inside an archive (brief: "archive_limit / bomb / ratio").
ARCHIVE_LIMIT_REASONS = frozenset({"archive_limit", "bomb", "ratio", BOMB_LIMIT, "archive_ratio_limit",
                                   "archive_member_too_large", "archive_total_limit", "archive_bomb"})
# An archive inside an archive may be refused for depth instead of (or before) its size.
NESTED_REASONS = ARCHIVE_LIMIT_REASONS | {"nested_archive", "archive_depth_limit",
                                          "archive_too_large_to_nest"}
# What a file that is not a picture at all may fail with (sniffed type not allowed, or undecodable).
NOT_MEDIA_REASONS = frozenset({FORMAT_NOT_ALLOWED, DECODE_ERROR})
TOO_LITTLE_REASONS = frozenset({DECODE_ERROR, TRUNCATED, FORMAT_NOT_ALLOWED})

ANY_REASON = "*"  # in a reason set: any non-null reason is acceptable
STATUSES = ("ok", "partial", "failed", "skipped")

# Localhost port nothing listens on by default (discard service); the test passes a live canary.
DEFAULT_CANARY_PORT = 9
ZIP_PASSWORD = b"infected"  # the malware-analysis convention; lets the test decrypt the member
BOMB_SIZE = 1 << 30  # 1 GiB of zeros behind the zip-bomb member (brief: >= 1 GiB)
BIG_PNG_SIDE = 10_000  # 100 MP: below the lead's 200 MP pixel budget, above Pillow's 89.5 MP default
HEADER_ONLY_PNG_SIDE = 100_000  # 10 000 MP declared: far beyond any budget
NESTED_FANOUT = 4  # nested42.zip: 4 zips x 4 distinct 1 GiB bomb zips = 16 GiB declared
# Where naive extraction of the unsafe members would write (the test checks they never appear).
ZIP_ABSOLUTE_MEMBER = "/etc/evil.jpg"
TAR_ABSOLUTE_MEMBER = "/tmp/vidpipe-hostile-evil-abs.jpg"
SLIP_MEMBER_NAME = "evil.jpg"


@dataclass(frozen=True)
class Expectation:
    """Acceptable final states of one path: ``allowed`` maps status -> acceptable reasons.

    ``None`` in a reason set means reason null; other entries are fnmatch patterns (``"*"``: any).
    """

    allowed: dict[str, frozenset[str | None]]
    why: str
    required: bool = True  # the path must appear in the export
    pattern: bool = False  # the key is an fnmatch pattern ("*" also matches "/" and "!")
    hashed: bool = False  # the line must carry sha256 and perceptual hashes
    gps: tuple[float, float] | None = None  # (lat, lon) the export must give
    mime: str | None = None  # the sniffed MIME type the export must give
    # Fields beyond the fixed contract (e.g. "extension_mismatch"): checked when the line has them.
    fields: dict[str, object] = field(default_factory=dict)

    @property
    def statuses(self) -> frozenset[str]:
        return frozenset(self.allowed)

    def accepts(self, status: str, reason: str | None) -> bool:
        """True when (status, reason) is an acceptable final state."""
        reasons = self.allowed.get(status)
        if reasons is None:
            return False
        if reason is None:
            return None in reasons
        return any(r is not None and fnmatch.fnmatchcase(reason, r) for r in reasons)

    def describe(self) -> str:
        parts = []
        for status, reasons in self.allowed.items():
            names = sorted("null" if r is None else r for r in reasons)
            parts.append(f"{status}({'|'.join(names)})")
        return " or ".join(parts)


def expect(why: str, *, ok: bool = False, partial=None, failed=None, skipped=None, **checks) -> Expectation:
    """Build an Expectation; ``partial``/``failed``/``skipped`` take the acceptable reasons."""
    allowed: dict[str, frozenset[str | None]] = {}
    if ok:
        allowed["ok"] = frozenset({None})
    for status, reasons in (("partial", partial), ("failed", failed), ("skipped", skipped)):
        if reasons is not None:
            allowed[status] = frozenset([reasons] if isinstance(reasons, str) else reasons)
    return Expectation(allowed=allowed, why=why, **checks)


# ---------------------------------------------------------------------------------------------
# Small valid media, unique per seed (so no two cases collapse into one sha256 line).
# ---------------------------------------------------------------------------------------------
def _pixels(seed: int, width: int = 128, height: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 2 + seed * 37) % 256, (yy * 2 + seed * 11) % 256, (xx * yy // 7) % 256], -1)
    noise = rng.integers(0, 40, base.shape)
    img = (base + noise).clip(0, 255).astype(np.uint8)
    x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
    img[y0:y0 + height // 3, x0:x0 + width // 3] = rng.integers(0, 256, 3)  # a block for pHash
    return img


def make_jpeg(seed: int, exif_tiff: bytes | None = None, quality: int = 85) -> bytes:
    """A small baseline JPEG; ``exif_tiff`` (a TIFF blob) is spliced in as an APP1 Exif segment."""
    buf = io.BytesIO()
    Image.fromarray(_pixels(seed)).save(buf, "JPEG", quality=quality)
    data = buf.getvalue()
    if exif_tiff is None:
        return data
    payload = b"Exif\x00\x00" + exif_tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + app1 + data[2:]  # right after SOI, before JFIF APP0: as cameras write it


def make_png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_pixels(seed)).save(buf, "PNG")
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_ihdr(width: int, height: int) -> bytes:
    return _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))  # 8-bit RGB


def make_header_only_bomb_png(side: int = HEADER_ONLY_PNG_SIDE) -> bytes:
    """A PNG whose IHDR declares side x side RGB pixels, followed by a tiny IDAT."""
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_ihdr(side, side) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _repeat_deflate(segments: list[tuple[bytes, int]], final: bool = True) -> bytes:
    """Raw deflate of sum(seg * n): each distinct segment compressed once and its output repeated.

    A full flush resets the compressor's history and byte-aligns its output, so the compressed
    form of a segment does not depend on what came before; we pay for a few MB of compression
    instead of a GiB.
    """
    out = []
    for seg, times in segments:
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        out.append((comp.compress(seg) + comp.flush(zlib.Z_FULL_FLUSH)) * times)
    if final:
        out.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))  # empty final block
    return b"".join(out)


def make_big_png(side: int = BIG_PNG_SIDE) -> bytes:
    """A real side x side RGB PNG, mostly black with a grey and a white rectangle (a few hundred KB)."""
    row_bytes = side * 3
    zero_row = b"\x00" + bytes(row_bytes)  # filter byte 0 ("None") + black pixels
    q = side // 4
    white_row = b"\x00" + bytes(q * 3) + b"\xff" * (2 * q * 3) + bytes((side - 3 * q) * 3)
    grey_row = b"\x00" + b"\x80" * (q * 3) + bytes((side - q) * 3)
    band = 100  # rows per compressed segment
    plan = [(zero_row, q), (white_row, q), (grey_row, q), (zero_row, side - 3 * q)]
    segments = []
    adler = 1
    for row, count in plan:
        assert count % band == 0
        block = row * band
        segments.append((block, count // band))
        for _ in range(count // band):
            adler = zlib.adler32(block, adler)
    idat = b"\x78\xda" + _repeat_deflate(segments) + struct.pack(">I", adler)
    return b"\x89PNG\r\n\x1a\n" + _png_ihdr(side, side) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------------
# EXIF (TIFF) blobs written by hand: the point is to write what no library would.
# ---------------------------------------------------------------------------------------------
ASCII, SHORT, LONG, RATIONAL = 2, 3, 4, 5
_TYPE_SIZE = {1: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, 7: 1}


def _ifd(offset: int, entries: list[tuple[int, int, int, bytes]], next_ifd: int) -> bytes:
    """One little-endian IFD at ``offset`` with its out-of-line values right after it.

    Each entry is (tag, type, count, value bytes). Value bytes of 4 or fewer are stored inline;
    longer ones go to the data area. A 4-byte value with a count whose size exceeds 4 (the
    hostile "huge count" case) is written inline as the offset field, exactly as given.
    """
    data_start = offset + 2 + 12 * len(entries) + 4
    head = struct.pack("<H", len(entries))
    data = b""
    for tag, typ, count, value in sorted(entries):
        if len(value) <= 4:
            head += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\x00")
        else:
            head += struct.pack("<HHII", tag, typ, count, data_start + len(data))
            data += value + (b"\x00" if len(value) % 2 else b"")
    return head + struct.pack("<I", next_ifd) + data


def _ascii(text: str) -> bytes:
    return text.encode("ascii") + b"\x00"


def _rationals(*pairs: tuple[int, int]) -> bytes:
    return b"".join(struct.pack("<II", n, d) for n, d in pairs)


def _dms(value: float) -> bytes:
    deg = int(value)
    minutes = int((value - deg) * 60)
    sec_x100 = round(((value - deg) * 60 - minutes) * 60 * 100)
    return _rationals((deg, 1), (minutes, 1), (sec_x100, 100))


def exif_with_gps(make: str, lat: float, lon: float) -> bytes:
    """IFD0 (Make, Model, GPS pointer) + a GPS IFD with signed-degree lat/lon."""
    ifd0_entries = [(0x010F, ASCII, len(make) + 1, _ascii(make)), (0x0110, ASCII, 8, _ascii("Hostile")),
                    (0x8825, LONG, 1, struct.pack("<I", 0))]
    gps_offset = 8 + len(_ifd(8, ifd0_entries, 0))
    ifd0_entries[-1] = (0x8825, LONG, 1, struct.pack("<I", gps_offset))
    gps_entries = [
        (0x0000, 1, 4, b"\x02\x03\x00\x00"),  # GPSVersionID 2.3.0.0
        (0x0001, ASCII, 2, b"N\x00" if lat >= 0 else b"S\x00"),
        (0x0002, RATIONAL, 3, _dms(abs(lat))),
        (0x0003, ASCII, 2, b"E\x00" if lon >= 0 else b"W\x00"),
        (0x0004, RATIONAL, 3, _dms(abs(lon))),
    ]
    return b"II*\x00" + struct.pack("<I", 8) + _ifd(8, ifd0_entries, 0) + _ifd(gps_offset, gps_entries, 0)


def exif_ifd0_self_cycle() -> bytes:
    """IFD0 whose next-IFD offset points back at IFD0 itself (offset 8)."""
    entries = [(0x010F, ASCII, 9, _ascii("CycleCam")), (0x0110, ASCII, 6, _ascii("Loop1"))]
    return b"II*\x00" + struct.pack("<I", 8) + _ifd(8, entries, next_ifd=8)


def exif_two_cycle_and_subifd_cycle() -> bytes:
    """IFD0 -> IFD1 -> IFD0 (two-step chain cycle) and an ExifIFD pointer that points to IFD0.

    exifread's own guard only catches the self-cycle in ``_next_ifd``; a reader that recurses into
    sub-IFDs without a visited set recurses until RecursionError.
    """
    ifd0 = [(0x010F, ASCII, 9, _ascii("CycleCam")), (0x0110, ASCII, 6, _ascii("Loop2")),
            (0x8769, LONG, 1, struct.pack("<I", 8))]  # ExifIFD pointer -> IFD0 itself
    ifd1_offset = 8 + len(_ifd(8, ifd0, 0))
    ifd1 = [(0x0103, SHORT, 1, struct.pack("<H", 6))]  # Compression = JPEG (a thumbnail IFD)
    return (b"II*\x00" + struct.pack("<I", 8) + _ifd(8, ifd0, ifd1_offset)
            + _ifd(ifd1_offset, ifd1, next_ifd=8))


def exif_huge_count() -> bytes:
    """Tags that claim 0x7FFFFFFF values: ASCII (2 GiB) and SHORT (4 GiB) pointing into the blob."""
    entries = [
        (0x010F, ASCII, 8, _ascii("HugeCam")),
        (0x010E, ASCII, 0x7FFFFFFF, struct.pack("<I", 8)),  # ImageDescription: 2 GiB "string"
        (0x0213, SHORT, 0x7FFFFFFF, struct.pack("<I", 8)),  # YCbCrPositioning: 2^31 shorts
        (0x0110, ASCII, 8, _ascii("Count31")),
    ]
    return b"II*\x00" + struct.pack("<I", 8) + _ifd(8, entries, 0)


# ---------------------------------------------------------------------------------------------
# Archives written byte by byte (zipfile refuses to write most of what we need).
# ---------------------------------------------------------------------------------------------
_DOS_DATE = ((2020 - 1980) << 9) | (1 << 5) | 1  # 2020-01-01
_DOS_TIME = 0
_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


@dataclass
class ZipMember:
    """One member as stored: ``payload`` is already compressed and/or encrypted."""

    name: bytes
    payload: bytes
    crc: int
    size: int
    method: int = 0  # 0 stored, 8 deflate
    flags: int = 0  # bit 0: encrypted
    external_attr: int = 0o100644 << 16  # unix regular file, rw-r--r--


def stored(name: str, data: bytes, external_attr: int = 0o100644 << 16) -> ZipMember:
    return ZipMember(name.encode(), data, zlib.crc32(data), len(data), external_attr=external_attr)


def zip_bytes(members: list[ZipMember]) -> bytes:
    """A plain (non-ZIP64) zip: local headers, data, central directory, end record."""
    out, central = bytearray(), bytearray()
    for m in members:
        local_offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, m.flags, m.method, _DOS_TIME, _DOS_DATE,
                           m.crc, len(m.payload), m.size, len(m.name), 0) + m.name + m.payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 20, 20, m.flags, m.method,
                               _DOS_TIME, _DOS_DATE, m.crc, len(m.payload), m.size, len(m.name), 0, 0, 0,
                               0, m.external_attr, local_offset) + m.name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + end)


def _zipcrypto(data: bytes, password: bytes, check_byte: int, rng: random.Random) -> bytes:
    """Traditional PKWARE encryption (APPNOTE 6.1): 12-byte header, then the stream cipher."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = _CRC_TABLE[(keys[0] ^ byte) & 0xFF] ^ (keys[0] >> 8)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = _CRC_TABLE[(keys[2] ^ (keys[1] >> 24)) & 0xFF] ^ (keys[2] >> 8)

    for byte in password:
        update(byte)
    out = bytearray()
    for byte in rng.randbytes(11) + bytes([check_byte]) + data:
        k = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ (((k * (k ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def encrypted(name: str, data: bytes, rng: random.Random) -> ZipMember:
    crc = zlib.crc32(data)
    payload = _zipcrypto(data, ZIP_PASSWORD, crc >> 24, rng)
    return ZipMember(name.encode(), payload, crc, len(data), flags=0x1)


@functools.lru_cache(maxsize=2)
def _bomb_head(prefix: bytes, size: int) -> tuple[bytes, int]:
    """Compressed first + middle MiBs of a bomb and the CRC-32 after them (shared by every bomb)."""
    mib = 1 << 20
    first, zero = prefix + bytes(mib - len(prefix)), bytes(mib)
    crc = zlib.crc32(first)
    for _ in range(size // mib - 2):
        crc = zlib.crc32(zero, crc)
    return _repeat_deflate([(first, 1), (zero, size // mib - 2)], final=False), crc


def bomb_member(name: str, prefix: bytes, size: int = BOMB_SIZE, trailer: bytes = b"") -> ZipMember:
    """``prefix`` (a real JPEG, so sniffing says "image"), zeros, then ``trailer``: ``size`` bytes.

    Distinct trailers make distinct contents, so de-duplication cannot stand in for the limits.
    """
    mib = 1 << 20
    head, crc = _bomb_head(prefix, size)
    last = bytes(mib - len(trailer)) + trailer
    payload = head + _repeat_deflate([(last, 1)])
    return ZipMember(name.encode(), payload, zlib.crc32(last, crc), size, method=8)


def nested_zip(prefix: bytes, fanout: int = NESTED_FANOUT) -> bytes:
    """42.zip-style: a zip of ``fanout`` zips of ``fanout`` distinct 1 GiB bomb zips each."""
    def deflated_zip(members: list[tuple[str, bytes]]) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        return buf.getvalue()

    level1 = []
    for i in range(fanout):
        bombs = [(f"bomb_{i}{j}.zip",
                  zip_bytes([bomb_member("payload.jpg", prefix, trailer=b"copy %d.%d" % (i, j))]))
                 for j in range(fanout)]
        level1.append((f"l1_{i}.zip", deflated_zip(bombs)))
    return deflated_zip(level1)


def tar_bytes(safe_jpeg: bytes, evil_jpeg: bytes, abs_jpeg: bytes) -> bytes:
    """A tar with a safe member, ``../`` and absolute members, a symlink and a device node."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        def add(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            info.mtime, info.mode = 1577836800, 0o644  # 2020-01-01, rw-r--r--
            if kind == tarfile.CHRTYPE:
                info.devmajor, info.devminor = 1, 3  # /dev/null's numbers
            tf.addfile(info, io.BytesIO(data) if data else None)

        add("photos/safe.jpg", safe_jpeg)
        add("../evil.jpg", evil_jpeg)
        add(TAR_ABSOLUTE_MEMBER, abs_jpeg)
        add("photos/link.jpg", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add("photos/null.jpg", kind=tarfile.CHRTYPE)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Truncation sweeps.
# ---------------------------------------------------------------------------------------------
def jpeg_scan_bounds(data: bytes) -> tuple[int, int]:
    """(offset of the SOS marker, offset of the first entropy-coded byte)."""
    i = 2
    while i + 4 <= len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker == 0xDA:
            return i, i + 2 + length
        i += 2 + length
    raise ValueError("no SOS marker")


def png_idat_bounds(data: bytes) -> tuple[int, int]:
    """(offset of the first IDAT data byte, offset just past the last IDAT data byte); one IDAT."""
    i = 8
    while i < len(data):
        length = struct.unpack(">I", data[i:i + 4])[0]
        if data[i + 4:i + 8] == b"IDAT":
            return i + 8, i + 8 + length
        i += 12 + length
    raise ValueError("no IDAT")


def _jpeg_sweep(data: bytes) -> list[tuple[str, int, Expectation]]:
    sos, scan = jpeg_scan_bounds(data)
    size = len(data)
    scan_len = size - 2 - scan  # entropy-coded bytes before EOI
    too_little = dict(failed=TOO_LITTLE_REASONS)
    some_data = dict(partial=TRUNCATED, failed=frozenset({DECODE_ERROR, TRUNCATED}))
    eoi_only = dict(ok=True, partial=TRUNCATED)
    cuts = [
        ("00_soi_only", 2, too_little, "only the SOI marker: not even sniffable as JPEG"),
        ("01_app0", 20, too_little, "SOI + APP0 (JFIF) only, no tables"),
        ("02_tables_no_sos", sos, too_little, "all headers and tables, no SOS: header-only"),
        ("03_sos_no_data", scan, dict(partial=TRUNCATED, failed=TOO_LITTLE_REASONS),
         "SOS header complete, zero entropy-coded bytes: at best an all-grey picture"),
        ("04_scan_10pct", scan + scan_len // 10, some_data, "10 % of the scan data"),
        ("05_scan_25pct", scan + scan_len // 4, some_data, "25 % of the scan data"),
        ("06_scan_50pct", scan + scan_len // 2, some_data, "50 % of the scan data"),
        ("07_scan_90pct", scan + scan_len * 9 // 10, some_data, "90 % of the scan data"),
        ("08_no_eoi", size - 2, eoi_only,
         "only the EOI marker missing: all pixels decode identically (Pillow strict still raises)"),
        ("09_one_byte_short", size - 1, eoi_only, "last byte (0xD9 of EOI) missing: same as no EOI"),
    ]
    return [(f"trunc/jpeg_cut_{name}.jpg", cut, expect(f"JPEG cut at {cut}/{size}: {why}", **states))
            for name, cut, states, why in cuts]


def _png_sweep(data: bytes) -> list[tuple[str, int, Expectation]]:
    start, end = png_idat_bounds(data)
    size = len(data)
    n = end - start
    too_little = dict(failed=TOO_LITTLE_REASONS)
    some_data = dict(partial=TRUNCATED, failed=frozenset({DECODE_ERROR, TRUNCATED}))
    iend_only = dict(ok=True, partial=TRUNCATED)
    cuts = [
        ("00_signature_only", 8, too_little, "PNG signature only"),
        ("01_ihdr_only", 33, too_little, "signature + IHDR, no IDAT: header-only"),
        ("02_idat_no_data", start, dict(partial=TRUNCATED, failed=TOO_LITTLE_REASONS),
         "IDAT chunk header, zero data bytes"),
        ("03_idat_25pct", start + n // 4, some_data, "25 % of IDAT"),
        ("04_idat_50pct", start + n // 2, some_data, "50 % of IDAT"),
        ("05_idat_75pct", start + 3 * n // 4, some_data, "75 % of IDAT"),
        ("06_no_adler", end - 4, some_data,
         "zlib Adler-32, IDAT CRC and IEND missing: Pillow 13 loads it silently, pixels complete"),
        ("07_no_idat_crc", end, some_data,
         "IDAT CRC and IEND missing: Pillow 13 loads it silently, pixels complete"),
        ("08_no_iend", size - 12, iend_only, "only the IEND chunk missing: IDAT CRC and Adler-32 intact"),
        ("09_one_byte_short", size - 1, iend_only, "last byte of the IEND CRC missing"),
    ]
    return [(f"trunc/png_cut_{name}.png", cut, expect(f"PNG cut at {cut}/{size}: {why}", **states))
            for name, cut, states, why in cuts]


# ---------------------------------------------------------------------------------------------
# The corpus.
# ---------------------------------------------------------------------------------------------
INVALID_UTF8_NAME = b"bad\xff\xfe.jpg"


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def build_hostile_corpus(root: Path, canary_port: int = DEFAULT_CANARY_PORT) -> dict[str, Expectation]:
    """Write every hostile case under ``root``; return the acceptable final state per relative path.

    ``canary_port``: a localhost TCP port the network-bait files point at, so a test can listen
    there and prove nothing ever connected.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20240229)  # fixed: the corpus is byte-identical on every run
    cases: dict[str, Expectation] = {}
    seeds = iter(range(100, 1000))

    def put(rel: str, data: bytes, exp: Expectation) -> None:
        _write(root, rel, data)
        cases[rel] = exp

    ok_image = dict(ok=True, hashed=True)
    mismatch = {"extension_mismatch": True}  # the name lies about the content: a finding

    # --- nothing, noise and lies ---------------------------------------------------------------
    put("images/empty.jpg", b"", expect("zero-byte file", failed=TOO_LITTLE_REASONS | {EMPTY_FILE},
                                          skipped=frozenset({EMPTY_FILE})))
    noise = b"\x00" + rng.randbytes(4095)  # NUL first: no magic number and not text
    put("images/random.jpg", noise, expect("4 KiB of seeded random bytes", failed=NOT_MEDIA_REASONS,
                                           mime="application/octet-stream"))
    text = b"Meeting notes, not a photograph.\nNothing to decode here.\n" * 20
    put("images/notes.jpg", text, expect("plain text named .jpg: mime mismatch must be recorded",
                                         failed=NOT_MEDIA_REASONS, skipped=FORMAT_NOT_ALLOWED,
                                         mime="text/plain", fields=mismatch))
    put("images/jpeg_named.png", make_jpeg(next(seeds)),
        expect("valid JPEG named .png: decoded by content", mime="image/jpeg", fields=mismatch, **ok_image))

    # --- truncation sweeps (plus the intact originals as controls) ----------------------------
    jpeg, png = make_jpeg(next(seeds)), make_png(next(seeds))
    put("trunc/jpeg_intact.jpg", jpeg, expect("control: the JPEG the sweep cuts", **ok_image))
    put("trunc/png_intact.png", png, expect("control: the PNG the sweep cuts", **ok_image))
    for rel, cut, exp in _jpeg_sweep(jpeg) + _png_sweep(png):
        put(rel, (jpeg if rel.endswith(".jpg") else png)[:cut], exp)

    # --- pixel bombs --------------------------------------------------------------------------
    put("bombs/header_only_100000x100000.png", make_header_only_bomb_png(),
        expect("IHDR declares 10^10 pixels", failed=BOMB_LIMIT))
    put("bombs/real_10000x10000.png", make_big_png(),
        expect("real 100 MP PNG (~300 MB decoded), inside the 200 MP budget", **ok_image))

    # --- EXIF traps ---------------------------------------------------------------------------
    exif_ok = dict(ok=True, partial=ANY_REASON, hashed=True)
    put("exif/ifd0_self_cycle.jpg", make_jpeg(next(seeds), exif_ifd0_self_cycle()),
        expect("IFD0 next-IFD offset points at itself", **exif_ok))
    put("exif/ifd_two_cycle_subifd_cycle.jpg", make_jpeg(next(seeds), exif_two_cycle_and_subifd_cycle()),
        expect("IFD0 -> IFD1 -> IFD0, and ExifIFD pointer -> IFD0", **exif_ok))
    put("exif/huge_count.jpg", make_jpeg(next(seeds), exif_huge_count()),
        expect("ASCII and SHORT tags with count 0x7FFFFFFF", **exif_ok))
    put("exif/gps_zero.jpg", make_jpeg(next(seeds), exif_with_gps("ZeroCam", 0.0, 0.0)),
        expect("GPS 0 N 0 E is a real position: kept, not dropped", gps=(0.0, 0.0), **ok_image))
    put("exif/gps_control.jpg", make_jpeg(next(seeds), exif_with_gps("PlaceCam", -33.8568, 151.2153)),
        expect("control: GPS 33.8568 S 151.2153 E (signed degrees)", gps=(-33.8568, 151.2153),
               **ok_image))

    # --- archives -----------------------------------------------------------------------------
    container = expect("the archive file itself", ok=True, partial=ANY_REASON, skipped=ANY_REASON,
                       required=False)
    jpeg_prefix = make_jpeg(next(seeds))
    put("archives/zipbomb.zip", zip_bytes([bomb_member("payload.jpg", jpeg_prefix)]), container)
    cases["archives/zipbomb.zip!payload.jpg"] = expect(
        "member expands to 1 GiB (ratio ~1000:1)", skipped=ARCHIVE_LIMIT_REASONS,
        failed=ARCHIVE_LIMIT_REASONS)

    put("archives/nested42.zip", nested_zip(jpeg_prefix), container)
    nested = f"42.zip-style: {NESTED_FANOUT}x{NESTED_FANOUT} distinct bomb zips of 1 GiB each"
    cases["archives/nested42.zip!*.zip"] = expect(
        f"{nested}; an inner archive is a container, or refused for depth/size", ok=True, partial=ANY_REASON,
        skipped=ANY_REASON, failed=NESTED_REASONS, required=False, pattern=True)
    cases["archives/nested42.zip!*payload.jpg"] = expect(
        f"{nested}; the 1 GiB payload is never expanded", skipped=NESTED_REASONS, failed=NESTED_REASONS,
        required=False, pattern=True)

    slip_safe = make_jpeg(next(seeds))
    put("archives/zipslip.zip", zip_bytes([
        stored("photos/safe.jpg", slip_safe),
        stored("../../evil.jpg", make_jpeg(next(seeds))),
        stored("photos/link.jpg", b"/etc/passwd", external_attr=0o120777 << 16),
    ]), container)
    cases["archives/zipslip.zip!photos/safe.jpg"] = expect("the safe member next to the slip", **ok_image)
    cases["archives/zipslip.zip!../../evil.jpg"] = expect("zip-slip member name", skipped=UNSAFE_MEMBER)
    cases["archives/zipslip.zip!photos/link.jpg"] = expect(
        "zip member with unix symlink mode -> /etc/passwd", skipped=frozenset({SYMLINK, NOT_REGULAR}))

    put("archives/absolute.zip", zip_bytes([
        stored(ZIP_ABSOLUTE_MEMBER, make_jpeg(next(seeds))),
        stored("photos/safe.jpg", make_jpeg(next(seeds))),
    ]), container)
    cases["archives/absolute.zip!" + ZIP_ABSOLUTE_MEMBER] = expect("absolute member name",
                                                                  skipped=UNSAFE_MEMBER)
    cases["archives/absolute.zip!photos/safe.jpg"] = expect("safe member after the absolute one", **ok_image)

    put("archives/encrypted.zip", zip_bytes([
        encrypted("secret.jpg", make_jpeg(next(seeds)), rng),
        stored("plain.jpg", make_jpeg(next(seeds))),
    ]), container)
    cases["archives/encrypted.zip!secret.jpg"] = expect("ZipCrypto member (flag bit 0)", skipped=ENCRYPTED)
    cases["archives/encrypted.zip!plain.jpg"] = expect("unencrypted member beside it", **ok_image)

    tar_jpegs = [make_jpeg(next(seeds)) for _ in range(3)]
    put("archives/slip.tar", tar_bytes(*tar_jpegs), container)
    cases["archives/slip.tar!photos/safe.jpg"] = expect("the safe tar member", **ok_image)
    cases["archives/slip.tar!../evil.jpg"] = expect("tar member with ../", skipped=UNSAFE_MEMBER)
    cases["archives/slip.tar!" + TAR_ABSOLUTE_MEMBER] = expect("absolute tar member", skipped=UNSAFE_MEMBER)
    cases["archives/slip.tar!photos/link.jpg"] = expect("tar symlink member -> /etc/passwd",
                                                        skipped=frozenset({SYMLINK, NOT_REGULAR}))
    cases["archives/slip.tar!photos/null.jpg"] = expect("tar character-device member",
                                                        skipped=NOT_REGULAR)

    # --- links and special files: never followed, never opened --------------------------------
    put("links/target.jpg", make_jpeg(next(seeds)), expect("the file a link points at", **ok_image))
    put("links/target_dir/inside.jpg", make_jpeg(next(seeds)),
        expect("a file in the directory a link points at (reached once, by its real path)", **ok_image))
    link_skip = expect("symbolic link: never followed", skipped=SYMLINK)
    for name, target in (("loop_a", "loop_b"), ("loop_b", "loop_a"), ("file_link.jpg", "target.jpg"),
                         ("dir_link", "target_dir"), ("dangling.jpg", "missing.jpg")):
        os.symlink(target, root / "links" / name)
        cases[f"links/{name}"] = link_skip
    if hasattr(os, "mkfifo"):
        (root / "special").mkdir()
        os.mkfifo(root / "special" / "fifo.jpg")  # opening it would block forever
        cases["special/fifo.jpg"] = expect("FIFO named .jpg", skipped=NOT_REGULAR)

    # --- a name that is not UTF-8 -------------------------------------------------------------
    bad_dir = root / "names"
    bad_dir.mkdir()
    try:
        (bad_dir / os.fsdecode(INVALID_UTF8_NAME)).write_bytes(make_jpeg(next(seeds)))
        cases["names/" + os.fsdecode(INVALID_UTF8_NAME)] = expect(
            "file name bytes are invalid UTF-8: decoded and its path kept losslessly", **ok_image)
    except (OSError, UnicodeError):  # a file system that refuses non-UTF-8 names (e.g. APFS)
        pass

    # --- network bait: text that a permissive demuxer would fetch ------------------------------
    url = f"http://127.0.0.1:{canary_port}"
    not_video = expect("text pretending to be video: must not be demuxed, never touches the network",
                       failed=NOT_MEDIA_REASONS, skipped=frozenset({FORMAT_NOT_ALLOWED, NOT_MEDIA}))
    disguised = replace(not_video, fields=mismatch)
    put("net/page.mp4", (f'<!DOCTYPE html>\n<html><body><video src="{url}/clip.mp4" autoplay></video>'
                         f'<img src="{url}/pixel.jpg"></body></html>\n').encode(), disguised)
    playlist = (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
                f"#EXTINF:10.0,\n{url}/seg0.ts\n#EXTINF:10.0,\n{url}/seg1.ts\n"
                "#EXT-X-ENDLIST\n").encode()
    put("net/playlist.mp4", playlist, disguised)
    # FFmpeg's HLS demuxer accepts this one by its extension and would open the segment URLs
    # (http is refused only by FFmpeg's default protocol whitelist; file:// is allowed).
    put("net/playlist.m3u8", playlist.replace(b"seg", b"hls"), expect(
        "HLS playlist: not a media file of its own, never demuxed", failed=NOT_MEDIA_REASONS,
        skipped=frozenset({FORMAT_NOT_ALLOWED, NOT_MEDIA})))
    return cases


def relative_key(root: Path, path: str) -> str | None:
    """Map an exported absolute path (``/abs/a.zip!m``) to a corpus key; None when outside ``root``."""
    outer, bang, inner = path.partition("!")
    try:
        rel = Path(outer).relative_to(root).as_posix()
    except ValueError:
        return None
    return rel + bang + inner


def find_expectation(cases: dict[str, Expectation], key: str) -> Expectation | None:
    """The exact key's expectation, else that of the longest pattern key matching it."""
    if key in cases:
        return cases[key]
    matches = [k for k, e in cases.items() if e.pattern and fnmatch.fnmatchcase(key, k)]
    return cases[max(matches, key=len)] if matches else None
