"""Where content hides inside an image file: the real end of the image, and the EXIF thumbnail.

Pure byte parsers, no decoding. ``image_end`` walks the format's own structure (JPEG markers and
entropy-coded scans up to EOI, PNG chunks up to IEND, GIF blocks up to the trailer, the WebP RIFF
size), so an EOI inside an embedded thumbnail or a scan never counts as the end; bytes after the
end are appended data (a polyglot, a motion-photo video, padding). ``exif_thumbnail_span`` follows
the EXIF block's IFD1 (JPEGInterchangeFormat / ...Length), as a viewer showing the preview would.
"""

from __future__ import annotations

import re

# EXIF lives in the header: JPEG APP1 segments (each < 64 KiB) and PNG/WebP chunks before the pixels.
# The thumbnail search reads at most this many bytes, both when listing and when opening it.
THUMBNAIL_SCAN_BYTES = 16 * 1024**2
JPEG_THUMBNAIL_TAGS = (0x0201, 0x0202)  # JPEGInterchangeFormat, JPEGInterchangeFormatLength (EXIF 2.32, IFD1)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# In entropy-coded data 0xFF is followed by 0x00 (stuffing), a restart marker or 0xFF (fill); anything
# else is the next marker.
_JPEG_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def format_of(data: bytes) -> str | None:
    """The container label this module understands, from magic bytes."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def image_end(data: bytes) -> int | None:
    """Offset just past the first image in ``data``; None when its end is not in ``data``."""
    parsers = {"JPEG": _jpeg_end, "PNG": _png_end, "GIF": _gif_end, "WEBP": _webp_end}
    parser = parsers.get(format_of(data) or "")
    try:
        return parser(data) if parser else None
    except IndexError:  # a structure running past the data: the end is not here
        return None


def _jpeg_segments(data: bytes, pos: int = 2):
    """Yield (marker, payload_start, payload_end) for the segments from ``pos`` on, up to and including SOS."""
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            return
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= len(data):
            return
        marker = data[pos]
        pos += 1
        if marker == 0xD9 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length field
            yield marker, pos, pos
            continue
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length < 2 or pos + 2 > len(data):
            return
        yield marker, pos + 2, pos + length
        pos += length


def _jpeg_end(data: bytes) -> int | None:
    pos = 2
    while True:
        after_scan = None
        for marker, start, end in _jpeg_segments(data, pos):
            if marker == 0xD9:
                return start
            if marker == 0xDA:
                after_scan = end
                break
        if after_scan is None or after_scan > len(data):
            return None
        match = _JPEG_MARKER_AFTER_SCAN.search(data, after_scan)
        if match is None:
            return None
        pos = match.start()  # a progressive file has more scans (and tables) before EOI


def _png_chunks(data: bytes):
    """Yield (type, payload_start, payload_end) for each chunk whose bytes are all in ``data``."""
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        ctype = data[pos + 4:pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data):
            return
        yield ctype, pos + 8, end
        if ctype == b"IEND":
            return
        pos = end + 4


def _png_end(data: bytes) -> int | None:
    for ctype, _, end in _png_chunks(data):
        if ctype == b"IEND":
            return end + 4
    return None


def _gif_sub_blocks(data: bytes, pos: int) -> int:
    while True:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _gif_end(data: bytes) -> int | None:
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while True:
        block = data[pos]
        if block == 0x3B:  # trailer
            return pos + 1
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _gif_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor, local colour table, LZW code size, sub-blocks
            local = data[pos + 9]
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            pos = _gif_sub_blocks(data, pos + 1)
        else:
            return None


def _webp_end(data: bytes) -> int | None:
    size = int.from_bytes(data[4:8], "little")
    end = 8 + size + (size & 1)
    return end if end <= len(data) else None


def exif_thumbnail_span(data: bytes) -> tuple[int, int] | None:
    """(offset, length) in ``data`` of the JPEG thumbnail the first EXIF block's IFD1 points to."""
    data = data[:THUMBNAIL_SCAN_BYTES]
    for tiff_start, tiff_end in _exif_blocks(data):
        span = _ifd1_thumbnail(data, tiff_start, tiff_end)
        return None if span is None else (tiff_start + span[0], span[1])
    return None


def _exif_blocks(data: bytes):
    """Yield (start, end) of the first TIFF-structured EXIF block of a JPEG, PNG or WebP."""
    fmt = format_of(data)
    if fmt == "JPEG":
        for marker, start, end in _jpeg_segments(data):
            if marker == 0xDA:
                return
            if marker == 0xE1 and data[start:start + 6] == b"Exif\x00\x00":
                yield start + 6, min(end, len(data))
                return
    elif fmt == "PNG":
        for ctype, start, end in _png_chunks(data):
            if ctype == b"eXIf":
                yield start, end
                return
    elif fmt == "WEBP":
        pos = 12
        while pos + 8 <= len(data):
            size = int.from_bytes(data[pos + 4:pos + 8], "little")
            if data[pos:pos + 4] == b"EXIF":
                start = pos + 8 + (6 if data[pos + 8:pos + 14] == b"Exif\x00\x00" else 0)
                yield start, min(pos + 8 + size, len(data))
                return
            pos += 8 + size + (size & 1)


def _ifd1_thumbnail(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    tiff = data[start:end]
    if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    order = "little" if tiff[:2] == b"II" else "big"

    def u(offset: int, n: int) -> int:
        if offset + n > len(tiff):
            raise IndexError(offset)
        return int.from_bytes(tiff[offset:offset + n], order)

    try:
        ifd0 = u(4, 4)
        ifd1 = u(ifd0 + 2 + 12 * u(ifd0, 2), 4)
        if ifd1 == 0 or ifd1 == ifd0:
            return None
        values = {}
        for n in range(u(ifd1, 2)):
            entry = ifd1 + 2 + 12 * n
            tag, kind = u(entry, 2), u(entry + 2, 2)
            if tag in JPEG_THUMBNAIL_TAGS:
                values[tag] = u(entry + 8, 4) if kind == 4 else u(entry + 8, 2)
    except IndexError:
        return None
    offset, length = values.get(0x0201), values.get(0x0202)
    if not offset or not length or offset + length > len(tiff) or tiff[offset:offset + 2] != b"\xff\xd8":
        return None
    return offset, length
