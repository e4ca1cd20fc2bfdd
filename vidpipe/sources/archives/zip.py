"""Zip members in one pass: the central directory once, then each member by its local header offset.

Deflate64 (method 9, written by Windows Explorer for large zips) is inflated with ``inflate64``;
``zipfile`` itself only knows stored, deflate, bzip2 and LZMA.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from vidpipe.sources.archive import ArchiveError, BoundedReader, MemberEntry, zip_member_name
from vidpipe.sources.archives import Opener, preset_for
from vidpipe.sources.limits import ArchiveLimits

DEFLATE64 = 9
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's own layout (sizeFileHeader = 30)


def scan_zip(stream: BinaryIO, label: str, limits: ArchiveLimits,
             warnings: list[str]) -> Iterator[tuple[MemberEntry, Opener | None]]:
    try:
        zf = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ArchiveError("archive_error", str(exc)) from exc
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        warnings.append(f"archive_member_limit:{len(infos)}")
    for n, info in enumerate(infos):
        if info.is_dir():
            continue
        if n >= limits.max_members:  # listed (each is a record), never opened
            preset: tuple[str, str] | None = ("skipped", "archive_member_limit")
        else:
            preset = preset_for(info.orig_filename, encrypted=bool(info.flag_bits & 0x1),
                                link=stat.S_ISLNK(info.external_attr >> 16), regular=True,
                                size=info.file_size, compressed=info.compress_size, limits=limits)
        entry = MemberEntry(zip_member_name(info), info.file_size, info.compress_size, preset)
        yield entry, (None if preset else _opener(zf, stream, info, limits))


def _opener(zf: zipfile.ZipFile, stream: BinaryIO, info: zipfile.ZipInfo, limits: ArchiveLimits) -> Opener:
    return lambda: open_zip_member(zf, stream, info, limits)


def open_zip_member(zf: zipfile.ZipFile, stream: BinaryIO, info: zipfile.ZipInfo, limits: ArchiveLimits) -> BinaryIO:
    """One member as a bounded stream (one seek to its local header; no directory walk)."""
    cap = min(info.file_size, limits.max_member_bytes)
    try:
        if info.compress_type == DEFLATE64:
            inner: BinaryIO = io.BufferedReader(_Deflate64Reader(stream, info))
        else:
            inner = zf.open(info)
    except NotImplementedError as exc:
        raise ArchiveError("archive_method_not_supported", str(exc)) from exc
    except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ArchiveError("archive_error", str(exc)) from exc
    return io.BufferedReader(BoundedReader(inner, cap, info.compress_size, limits, damage="archive_member_corrupt"))


class _Deflate64Reader(io.RawIOBase):
    """A Deflate64 member's data, inflated as it is read; the CRC-32 is checked at the end."""

    def __init__(self, stream: BinaryIO, info: zipfile.ZipInfo) -> None:
        import inflate64  # lazy: optional (Deflate64 members only)

        stream.seek(info.header_offset)
        header = stream.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile("bad local file header")
        fields = _LOCAL_HEADER.unpack(header)
        stream.seek(fields[-2] + fields[-1], io.SEEK_CUR)  # name and extra field
        self._stream, self._left, self._crc_expected = stream, info.compress_size, info.CRC
        self._inflater = inflate64.Inflater()
        self._pending, self._crc, self._done = b"", 0, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            chunk = self._stream.read(min(1 << 20, self._left)) if self._left else b""
            self._left -= len(chunk)
            if not chunk:
                self._done = True
                if self._left:
                    raise ArchiveError("archive_truncated", "deflate64 data ends early")
                if self._crc != self._crc_expected:
                    raise ArchiveError("archive_member_corrupt", "deflate64 member fails its CRC-32")
                break
            try:
                self._pending = self._inflater.inflate(chunk)
            except Exception as exc:  # noqa: BLE001 - inflate64 raises plain exceptions on bad data
                raise ArchiveError("archive_member_corrupt", f"deflate64: {exc}") from exc
            self._crc = zlib.crc32(self._pending, self._crc)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
