"""Archive members: what they are (``MemberEntry``), which names are unsafe, bounded member streams.

Archives are read in one forward pass by :mod:`vidpipe.sources.archives` (zip, tar, 7z, RAR); the
archive task hashes every member in that pass. :func:`open_member` reaches one member on its own
(a video or large image whose content is derived later, a nested archive): one open per member,
used only where the pass could not already do the work.

Both run inside sandboxed workers only. Unsafe member names (``..``, absolute paths), links,
devices and encrypted members are listed with a final ``skipped`` status and never opened.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import zipfile
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from vidpipe import filetype
from vidpipe.sources.base import Member
from vidpipe.sources.limits import ArchiveLimits

ZIP_LABELS = {"ZIP"}
TAR_LABELS = {"TAR", "GZIP", "BZIP2", "XZ"}
LIBARCHIVE_LABELS = {"7Z", "RAR"}  # read through libarchive (vidpipe.sources.archives.libarchive)
SUPPORTED_LABELS = ZIP_LABELS | TAR_LABELS | LIBARCHIVE_LABELS


class ArchiveError(Exception):
    """The archive or member cannot be read; ``reason`` is the record's reason code."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True)
class MemberEntry:
    """One archive member as listed (nothing opened)."""

    name: bytes
    size: int | None
    compressed_size: int | None
    preset: tuple[str, str] | None  # final (status, reason) when the member must not be opened
    fs_kind: str = "member"
    index: int | None = None  # 1, 2, ... for the later members of a repeated name (see sources.base.Member)
    member_kind: str = "member"  # or page | thumbnail | appended for content derived from a file
    # The member's HashResult (vidpipe.pipeline.tasks) when the archive pass already read it: its
    # digests, type and, for small images, its content; the writer stores it without a second open.
    hashed: Any = None

    @property
    def key(self) -> Member:
        return Member(self.name, self.member_kind, self.index)


def number_repeated_names(entries: list[MemberEntry]) -> list[MemberEntry]:
    """Give every later member of a repeated name its occurrence number, so none hides another."""
    seen: dict[bytes, int] = {}
    out = []
    for entry in entries:
        n = seen.get(entry.name, 0)
        seen[entry.name] = n + 1
        out.append(replace(entry, index=n) if n else entry)
    return out


def unsafe_name(name: str) -> bool:
    """True for names that would escape an extraction root (zip-slip) or are absolute."""
    if not name or "\x00" in name:
        return True
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return True
    return ".." in posixpath.normpath(norm).split("/") or ".." in norm.split("/")


def list_members(stream: BinaryIO, label: str, limits: ArchiveLimits) -> tuple[list[MemberEntry], list[str]]:
    """List an archive's file members with presets applied, opening none; return (members, warnings)."""
    from vidpipe.sources.archives import scan  # lazy: cycle (the format modules import this one)

    warnings: list[str] = []
    members = [entry for entry, _ in scan(stream, label, limits, warnings)]
    return members, warnings


def ratio_exceeded(size: int, compressed: int, limits: ArchiveLimits) -> bool:
    return size > limits.ratio_floor_bytes and size > limits.max_ratio * max(compressed, 1)


_ratio_exceeded = ratio_exceeded


class BoundedReader(io.RawIOBase):
    """Wraps a member stream; raises once more than ``cap`` bytes come out (lying headers).

    Any other error of the inner stream becomes ``ArchiveError(damage)``; with ``exact_size``, a
    stream that ends short of it is damage too (a cut archive)."""

    def __init__(self, inner: BinaryIO, cap: int, compressed: int | None, limits: ArchiveLimits,
                 damage: str = "archive_error", exact_size: int | None = None) -> None:
        self._inner, self._cap, self._read = inner, cap, 0
        self._compressed, self._limits = compressed, limits
        self._damage, self._exact = damage, exact_size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        try:
            chunk = self._inner.read(len(buffer))
        except ArchiveError:
            raise
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - zlib/bz2/lzma/tarfile/zipfile errors: damaged bytes
            raise ArchiveError(self._damage, f"{type(exc).__name__}: {exc}") from exc
        self._read += len(chunk)
        if self._read > self._cap:
            raise ArchiveError("archive_bomb", "member produced more bytes than its header declared")
        if self._compressed is not None and ratio_exceeded(self._read, self._compressed, self._limits):
            raise ArchiveError("archive_ratio_limit", "member expands beyond the ratio limit")
        if not chunk and self._exact is not None and self._read < min(self._exact, self._cap):
            raise ArchiveError(self._damage, f"member ends after {self._read} of {self._exact} bytes")
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self._inner.close()
        super().close()


_BoundedReader = BoundedReader


def open_member(stream: BinaryIO, member: Member | bytes, limits: ArchiveLimits) -> BinaryIO:
    """Open one member (sniffed format of ``stream``) as a bounded stream: one open per member.

    A repeated name is resolved by its occurrence (``member.index``), in listing order; the
    format modules list members in the same order as the archive pass."""
    from vidpipe.sources.archives import OPENS, scan  # lazy: cycle (the format modules import this one)

    if isinstance(member, bytes):
        member = Member(member)
    OPENS["member"] += 1
    label = filetype.sniff(stream.read(filetype.SNIFF_BYTES)).label
    stream.seek(0)
    if label in ZIP_LABELS:
        return _open_zip_member(stream, member, limits)
    if label in TAR_LABELS:
        return _open_tar_member(stream, member, limits)
    if label not in LIBARCHIVE_LABELS:
        raise ArchiveError("archive_format_not_supported", label)
    warnings: list[str] = []
    for entry, opener in scan(stream, label, limits, warnings):
        if entry.key == member:
            if opener is None:
                raise ArchiveError(entry.preset[1] if entry.preset else "archive_error")
            from vidpipe.sources.opener import read_capped  # lazy: cycle (opener imports this module)

            with opener() as inner:
                return io.BytesIO(read_capped(inner, limits.max_inmemory_bytes))
    raise ArchiveError("archive_error", f"no member {member.label!r}")


def _open_zip_member(stream: BinaryIO, member: Member, limits: ArchiveLimits) -> BinaryIO:
    from vidpipe.sources.archives.zip import open_zip_member  # lazy: cycle (zip imports this module)

    try:
        zf = zipfile.ZipFile(stream)
        info = _nth((i for i in zf.infolist() if not i.is_dir() and zip_member_name(i) == member.name),
                    member.index or 0)
    except (StopIteration, zipfile.BadZipFile, RuntimeError, OSError, ValueError, EOFError) as exc:
        raise ArchiveError("archive_error", str(exc)) from exc
    if info.flag_bits & 0x1:
        raise ArchiveError("encrypted")
    return open_zip_member(zf, stream, info, limits)


def _open_tar_member(stream: BinaryIO, member: Member, limits: ArchiveLimits) -> BinaryIO:
    text_name = os.fsdecode(member.name)
    try:
        tf = tarfile.open(fileobj=stream, mode="r:*")
        info = _nth((i for i in tf if not i.isdir() and i.name == text_name), member.index or 0)
        inner = tf.extractfile(info)
    except (StopIteration, KeyError, tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError("archive_error", str(exc)) from exc
    if inner is None:
        raise ArchiveError("not_regular_file")
    return io.BufferedReader(BoundedReader(inner, min(info.size, limits.max_member_bytes), None, limits))


def _nth(items, n: int):
    """The ``n``-th (0-based) item of an iterator; StopIteration when there are fewer."""
    for i, item in enumerate(items):
        if i == n:
            return item
    raise StopIteration


def zip_member_name(info: zipfile.ZipInfo) -> bytes:
    """The member name as stored (UTF-8 when flagged, else CP437), as bytes."""
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    return info.orig_filename.encode(encoding, "surrogateescape")


_zip_member_name = zip_member_name
