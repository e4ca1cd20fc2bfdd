"""Tar members in one pass, plain or gzip/bzip2/xz-compressed, read as a forward-only stream.

``tarfile``'s stream mode (``r|*``) decompresses each byte once; each member's data is handed
over as it streams past. Damage (a cut ``.tar.gz``, a corrupt block) ends the scan: members before
it stay listed, the member being read is reported by its reader, and a warning records where the
listing stopped.
"""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from vidpipe.sources.archive import ArchiveError, BoundedReader, MemberEntry
from vidpipe.sources.archives import Opener, member_limit_warning, preset_for
from vidpipe.sources.limits import ArchiveLimits

# What a broken compressed stream or tar block raises from tarfile, zlib, bz2 and lzma.
STREAM_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, OSError, EOFError, zlib.error)
try:
    import lzma

    STREAM_ERRORS += (lzma.LZMAError,)
except ImportError:  # pragma: no cover - lzma is part of CPython builds we support
    pass

# After the member cap, headers are only counted (their data skipped, never hashed); past this many
# the count is reported as a lower bound, so a tar of millions of empty members costs bounded time.
MAX_UNLISTED_COUNT = 1_000_000


def scan_tar(stream: BinaryIO, label: str, limits: ArchiveLimits,
             warnings: list[str]) -> Iterator[tuple[MemberEntry, Opener | None]]:
    try:
        tf = tarfile.open(fileobj=stream, mode="r|*")
    except STREAM_ERRORS as exc:
        raise ArchiveError("archive_error", str(exc)) from exc
    listed = 0
    members = iter(tf)
    try:
        for info in members:
            if info.isdir():
                continue
            if listed >= limits.max_members:
                unlisted, exact = _count_rest(members, warnings)
                warnings.append(member_limit_warning(listed, 1 + unlisted, exact))
                return
            listed += 1
            preset = preset_for(info.name, encrypted=False, link=info.issym() or info.islnk(),
                                regular=info.isreg(), size=info.size, compressed=None, limits=limits)
            entry = MemberEntry(os.fsencode(info.name), info.size, None, preset)
            yield entry, (None if preset else _opener(tf, info, limits))
    except STREAM_ERRORS as exc:
        warnings.append(f"archive_truncated:after_member={listed}:{type(exc).__name__}")


def _count_rest(members: Iterator[tarfile.TarInfo], warnings: list[str]) -> tuple[int, bool]:
    """Count the file members left after the cap (data skipped); (count, exact)."""
    count = 0
    try:
        for info in members:
            if not info.isdir():
                count += 1
                if count >= MAX_UNLISTED_COUNT:
                    return count, False
    except STREAM_ERRORS as exc:
        warnings.append(f"archive_truncated:while_counting:{type(exc).__name__}")
        return count, False
    return count, True


def _opener(tf: tarfile.TarFile, info: tarfile.TarInfo, limits: ArchiveLimits) -> Opener:
    def open_() -> BinaryIO:
        try:
            inner = tf.extractfile(info)
        except STREAM_ERRORS as exc:
            raise ArchiveError("archive_truncated", str(exc)) from exc
        if inner is None:
            raise ArchiveError("not_regular_file")
        return io.BufferedReader(BoundedReader(inner, min(info.size, limits.max_member_bytes), None, limits,
                                               damage="archive_truncated", exact_size=info.size))
    return open_
