"""7z and RAR (v4 and v5) members in one pass, read-only, through libarchive (``libarchive-c``).

Why libarchive: one C library reads 7z (including solid blocks, LZMA/LZMA2/PPMd/BCJ), RAR 4 and
RAR 5 with no external program, as a forward stream, and says which entries are encrypted.
``py7zr`` covers 7z only and ``rarfile`` needs an ``unrar``/``bsdtar`` binary for compressed RAR
members (Debian offers only ``unrar-free`` or ``libarchive-tools``, i.e. libarchive again).
``libarchive-c`` is a ctypes binding to the system ``libarchive.so.13`` (Debian package
``libarchive13``); where that library is missing, 7z/RAR archives end ``skipped:
archive_format_not_supported:<label>:libarchive_missing`` and everything else still works.
Encrypted entries (7z AES, RAR encryption) are listed and ``skipped: encrypted``; an archive whose
headers are encrypted cannot be listed and fails as ``archive_error``.
"""

from __future__ import annotations

import ctypes
import io
import stat
from collections.abc import Iterator
from typing import BinaryIO

from vidpipe.sources.archive import ArchiveError, BoundedReader, MemberEntry
from vidpipe.sources.archives import Opener, member_limit_warning, preset_for
from vidpipe.sources.limits import ArchiveLimits

_FORMAT = {"7Z": "7zip", "RAR": "all"}  # "all": libarchive's RAR 4 and RAR 5 readers both
_BLOCK = 1 << 20


def available() -> bool:
    """True when libarchive-c and the system libarchive load."""
    try:
        import libarchive  # noqa: F401  # lazy: optional
    except (ImportError, OSError, AttributeError):
        return False
    return True


def _libarchive():
    try:
        import libarchive  # lazy: optional (the [libarchive] extra)
        import libarchive.ffi as ffi  # lazy: optional (the [libarchive] extra)
    except (ImportError, OSError, AttributeError) as exc:
        raise ArchiveError("archive_format_not_supported", f"libarchive_missing: {exc}") from exc
    return libarchive, ffi


def scan_libarchive(stream: BinaryIO, label: str, limits: ArchiveLimits,
                    warnings: list[str]) -> Iterator[tuple[MemberEntry, Opener | None]]:
    libarchive, ffi = _libarchive()
    errors = (libarchive.ArchiveError, OSError, EOFError)
    is_encrypted = getattr(ffi.libarchive, "archive_entry_is_encrypted", None)
    if is_encrypted is not None:
        is_encrypted.argtypes, is_encrypted.restype = [ctypes.c_void_p], ctypes.c_int
    listed = 0
    try:
        with libarchive.stream_reader(stream, format_name=_FORMAT[label], block_size=_BLOCK) as archive:
            for entry in archive:
                mode = entry.mode
                if stat.S_ISDIR(mode):
                    continue
                if listed >= limits.max_members:
                    rest = sum(1 for e in archive if not stat.S_ISDIR(e.mode))
                    warnings.append(member_limit_warning(listed, 1 + rest))
                    return
                listed += 1
                raw = ffi.entry_pathname(entry._entry_p) or b""
                name = raw.decode("utf-8", "surrogateescape")
                encrypted = bool(is_encrypted(entry._entry_p)) if is_encrypted is not None else False
                preset = preset_for(name, encrypted=encrypted, link=stat.S_ISLNK(mode) or bool(entry.linkpath),
                                    regular=stat.S_ISREG(mode), size=entry.size, compressed=None, limits=limits)
                member = MemberEntry(raw.replace(b"\x00", b""), entry.size, None, preset)
                yield member, (None if preset else _opener(entry, limits, errors))
    except errors as exc:
        if listed == 0 and not warnings:
            raise ArchiveError("archive_error", str(exc)) from exc
        warnings.append(f"archive_truncated:after_member={listed}:{type(exc).__name__}")


def _opener(entry, limits: ArchiveLimits, errors: tuple) -> Opener:
    def open_() -> BinaryIO:
        cap = min(entry.size if entry.size is not None else limits.max_member_bytes, limits.max_member_bytes)
        return io.BufferedReader(BoundedReader(_EntryStream(entry.get_blocks(_BLOCK), errors), cap, None, limits,
                                               damage="archive_truncated", exact_size=entry.size))
    return open_


class _EntryStream(io.RawIOBase):
    """The current entry's data blocks as a raw stream."""

    def __init__(self, blocks: Iterator[bytes], errors: tuple) -> None:
        self._blocks, self._errors, self._pending = blocks, errors, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if not self._pending:
            try:
                self._pending = next(self._blocks, b"")
            except self._errors as exc:
                message = str(exc)
                reason = "encrypted" if "ncrypt" in message or "assphrase" in message else "archive_truncated"
                raise ArchiveError(reason, message) from exc
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
