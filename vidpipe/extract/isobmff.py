"""A small, bounded ISO-BMFF box walker: just enough to find EXIF in CR3 and HEIF/AVIF files.

Every size read from the file is checked against its parent box before it is used, and the
number of boxes visited is capped, so a hostile file cannot make the walker loop or over-read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

# Canon's metadata container inside moov (Phil Harvey, ExifTool Canon CR3 documentation).
CANON_CR3_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
CR3_EXIF_BOXES = (b"CMT1", b"CMT2", b"CMT3", b"CMT4")
MAX_BOXES = 4096  # our own bound; real CR3/HEIC files have well under 100 boxes per level
MAX_ITEMS = 65536  # bound on iinf/iloc entry counts (HEIC grids have a few hundred tiles)


@dataclass(frozen=True)
class Box:
    """One box: its four-character type and where its payload lies in the file."""

    type: bytes
    start: int  # offset of the box header
    payload: int  # offset of the first payload byte
    end: int  # offset one past the last byte


def _read(fh: BinaryIO, offset: int, n: int) -> bytes:
    fh.seek(offset)
    return fh.read(n)


def iter_boxes(fh: BinaryIO, start: int, end: int) -> Iterator[Box]:
    """Yield the boxes lying between ``start`` and ``end``; stop at the first malformed header."""
    pos = start
    for _ in range(MAX_BOXES):
        if pos + 8 > end:
            return
        head = _read(fh, pos, 16)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:  # 64-bit "largesize" follows the type
            if len(head) < 16:
                return
            size = struct.unpack(">Q", head[8:16])[0]
            header = 16
        elif size == 0:  # box runs to the end of its parent
            size = end - pos
        if size < header or pos + size > end:
            return
        yield Box(kind, pos, pos + header, pos + size)
        pos += size


def find_box(fh: BinaryIO, start: int, end: int, kind: bytes) -> Box | None:
    """First child box of type ``kind`` between ``start`` and ``end``, or None."""
    for box in iter_boxes(fh, start, end):
        if box.type == kind:
            return box
    return None


def cr3_exif_blobs(fh: BinaryIO, size: int) -> dict[str, tuple[int, int]]:
    """Locate CMT1..CMT4 (IFD0, EXIF IFD, Canon MakerNote, GPS IFD) in a CR3 file.

    Returns ``{"CMT1": (offset, length), ...}``; each blob is a complete little TIFF stream.
    """
    moov = find_box(fh, 0, size, b"moov")
    if moov is None:
        return {}
    for box in iter_boxes(fh, moov.payload, moov.end):
        if box.type != b"uuid" or _read(fh, box.payload, 16) != CANON_CR3_UUID:
            continue
        found = {}
        for child in iter_boxes(fh, box.payload + 16, box.end):
            if child.type in CR3_EXIF_BOXES:
                found[child.type.decode()] = (child.payload, child.end - child.payload)
        return found
    return {}


def _full_box_version(fh: BinaryIO, box: Box) -> int:
    head = _read(fh, box.payload, 4)
    return head[0] if len(head) == 4 else -1


def _exif_item_id(fh: BinaryIO, iinf: Box) -> int | None:
    version = _full_box_version(fh, iinf)
    count_size = 2 if version == 0 else 4
    first_child = iinf.payload + 4 + count_size
    for infe in iter_boxes(fh, first_child, iinf.end):
        if infe.type != b"infe":
            continue
        head = _read(fh, infe.payload, 14)
        if len(head) < 12 or head[0] < 2:  # versions 0/1 carry no item_type
            continue
        if head[0] == 2:
            item_id, item_type = struct.unpack(">H", head[4:6])[0], head[8:12]
        else:
            item_id, item_type = struct.unpack(">I", head[4:8])[0], head[10:14]
        if item_type == b"Exif":
            return item_id
    return None


class _Cursor:
    """Sequential big-endian reads inside one box; raises ValueError past its end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def uint(self, size: int) -> int:
        if size == 0:
            return 0
        if size > 8 or self.pos + size > len(self.data):
            raise ValueError("iloc field out of range")
        value = int.from_bytes(self.data[self.pos:self.pos + size], "big")
        self.pos += size
        return value


def _iloc_extent(fh: BinaryIO, iloc: Box, item_id: int) -> tuple[int, int, int, int] | None:
    """(construction_method, offset, length, extent_count) of ``item_id``'s first extent."""
    cur = _Cursor(_read(fh, iloc.payload, min(iloc.end - iloc.payload, 1 << 20)))
    version = cur.uint(1)
    cur.uint(3)  # flags
    sizes = cur.uint(1)
    offset_size, length_size = sizes >> 4, sizes & 15
    sizes = cur.uint(1)
    base_size, index_size = sizes >> 4, (sizes & 15 if version in (1, 2) else 0)
    count = cur.uint(2 if version < 2 else 4)
    for _ in range(min(count, MAX_ITEMS)):
        this_id = cur.uint(2 if version < 2 else 4)
        method = cur.uint(2) & 15 if version in (1, 2) else 0
        cur.uint(2)  # data_reference_index
        base = cur.uint(base_size)
        extents = []
        for _ in range(cur.uint(2)):
            cur.uint(index_size)
            extents.append((cur.uint(offset_size), cur.uint(length_size)))
        if this_id == item_id and extents:
            return method, base + extents[0][0], extents[0][1], len(extents)
    return None


def heif_exif_item(fh: BinaryIO, size: int) -> tuple[int, int, int] | None:
    """Locate the ``Exif`` item of a HEIF/HEIC/AVIF file.

    Returns (offset, length, extent_count) of the item's first extent in the file, or None.
    The item payload starts with a 4-byte offset to the TIFF header (ISO/IEC 23008-12 A.2.1).
    """
    meta = find_box(fh, 0, size, b"meta")
    if meta is None:
        return None
    children = {b.type: b for b in iter_boxes(fh, meta.payload + 4, meta.end)}  # meta is a full box
    if b"iinf" not in children or b"iloc" not in children:
        return None
    item_id = _exif_item_id(fh, children[b"iinf"])
    if item_id is None:
        return None
    try:
        found = _iloc_extent(fh, children[b"iloc"], item_id)
    except ValueError:
        return None
    if found is None:
        return None
    method, offset, length, n_extents = found
    if method == 1:  # offset into the idat box of the same meta
        idat = children.get(b"idat")
        if idat is None:
            return None
        offset += idat.payload
    elif method != 0:  # 2 = item reference; never used for Exif in practice
        return None
    if length == 0 or offset + length > size:
        length = max(0, size - offset)
    return offset, length, n_extents
