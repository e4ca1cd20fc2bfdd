"""Zip and tar archives read in place: listing with limits, and bounded member streams.

Both run inside sandboxed workers only. Unsafe member names (``..``, absolute paths), links,
devices and encrypted members are listed with a final ``skipped`` status and never opened.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import zipfile
from dataclasses import dataclass, replace
from typing import BinaryIO

from vidpipe.sources.base import Member
from vidpipe.sources.limits import ArchiveLimits

ZIP_LABELS = {"ZIP"}
TAR_LABELS = {"TAR", "GZIP", "BZIP2", "XZ"}
SUPPORTED_LABELS = ZIP_LABELS | TAR_LABELS


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
    """List an archive's file members with presets applied; return (members, warnings)."""
    if label in ZIP_LABELS:
        return _list_zip(stream, limits)
    if label in TAR_LABELS:
        return _list_tar(stream, limits)
    raise ArchiveError("archive_format_not_supported", label)


def _cap_members(entries: list[MemberEntry], limits: ArchiveLimits) -> tuple[list[MemberEntry], list[str]]:
    warnings: list[str] = []
    total = 0
    capped: list[MemberEntry] = []
    for entry in entries:
        if entry.preset is None and entry.size is not None:
            total += entry.size
            if total > limits.max_total_bytes:
                entry = replace(entry, preset=("skipped", "archive_total_limit"))
        capped.append(entry)
    if any(e.preset == ("skipped", "archive_total_limit") for e in capped):
        warnings.append("archive_total_limit")
    return capped, warnings


def _list_zip(stream: BinaryIO, limits: ArchiveLimits) -> tuple[list[MemberEntry], list[str]]:
    try:
        zf = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ArchiveError("archive_error", str(exc)) from exc
    infos = zf.infolist()
    warnings: list[str] = []
    if len(infos) > limits.max_members:
        warnings.append(f"archive_member_limit:{len(infos)}")
    entries: list[MemberEntry] = []
    for n, info in enumerate(infos):
        if info.is_dir():
            continue
        raw = _zip_member_name(info)
        mode = info.external_attr >> 16
        preset: tuple[str, str] | None = None
        if n >= limits.max_members:
            preset = ("skipped", "archive_member_limit")
        elif unsafe_name(info.orig_filename):
            preset = ("skipped", "unsafe_member_name")
        elif info.flag_bits & 0x1:
            preset = ("skipped", "encrypted")
        elif stat.S_ISLNK(mode):
            preset = ("skipped", "symlink")
        elif info.file_size > limits.max_member_bytes:
            preset = ("skipped", "archive_member_too_large")
        elif _ratio_exceeded(info.file_size, info.compress_size, limits):
            preset = ("skipped", "archive_ratio_limit")
        entries.append(MemberEntry(raw, info.file_size, info.compress_size, preset))
    capped, more = _cap_members(number_repeated_names(entries), limits)
    return capped, warnings + more


def _ratio_exceeded(size: int, compressed: int, limits: ArchiveLimits) -> bool:
    return size > limits.ratio_floor_bytes and size > limits.max_ratio * max(compressed, 1)


def _list_tar(stream: BinaryIO, limits: ArchiveLimits) -> tuple[list[MemberEntry], list[str]]:
    try:
        tf = tarfile.open(fileobj=stream, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError("archive_error", str(exc)) from exc
    entries: list[MemberEntry] = []
    warnings: list[str] = []
    try:
        for n, info in enumerate(tf):
            if info.isdir():
                continue
            if n >= limits.max_members:
                warnings.append("archive_member_limit")
                break
            raw = os.fsencode(info.name)
            preset: tuple[str, str] | None = None
            if unsafe_name(info.name):
                preset = ("skipped", "unsafe_member_name")
            elif info.issym() or info.islnk():
                preset = ("skipped", "symlink")
            elif not info.isreg():
                preset = ("skipped", "not_regular_file")
            elif info.size > limits.max_member_bytes:
                preset = ("skipped", "archive_member_too_large")
            entries.append(MemberEntry(raw, info.size, None, preset))
    except (tarfile.TarError, OSError, EOFError, zlib_error()) as exc:
        warnings.append(f"archive_truncated:{type(exc).__name__}")
    capped, more = _cap_members(number_repeated_names(entries), limits)
    return capped, warnings + more


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


class _BoundedReader(io.RawIOBase):
    """Wraps a member stream; raises once more than ``cap`` bytes come out (lying headers)."""

    def __init__(self, inner: BinaryIO, cap: int, compressed: int | None, limits: ArchiveLimits) -> None:
        self._inner, self._cap, self._read = inner, cap, 0
        self._compressed, self._limits = compressed, limits

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        chunk = self._inner.read(len(buffer))
        self._read += len(chunk)
        if self._read > self._cap:
            raise ArchiveError("archive_bomb", "member produced more bytes than its header declared")
        if self._compressed is not None and _ratio_exceeded(self._read, self._compressed, self._limits):
            raise ArchiveError("archive_ratio_limit", "member expands beyond the ratio limit")
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self._inner.close()
        super().close()


def _nth(items, n: int):
    """The ``n``-th (0-based) item of an iterator; StopIteration when there are fewer."""
    for i, item in enumerate(items):
        if i == n:
            return item
    raise StopIteration


def open_member(stream: BinaryIO, member: Member | bytes, limits: ArchiveLimits) -> BinaryIO:
    """Open one member of a zip or tar (sniffed from ``stream``) as a bounded stream.

    A repeated name is resolved by its occurrence (``member.index``), in listing order."""
    if isinstance(member, bytes):
        member = Member(member)
    name, occurrence = member.name, member.index or 0
    head = stream.read(512)
    stream.seek(0)
    text_name = os.fsdecode(name)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            zf = zipfile.ZipFile(stream)
            info = _nth((i for i in zf.infolist() if not i.is_dir() and _zip_member_name(i) == name), occurrence)
            if info.flag_bits & 0x1:
                raise ArchiveError("encrypted")
            inner = zf.open(info)
        except (StopIteration, zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as exc:
            raise ArchiveError("archive_error", str(exc)) from exc
        cap = min(info.file_size, limits.max_member_bytes)
        return io.BufferedReader(_BoundedReader(inner, cap, info.compress_size, limits))
    try:
        tf = tarfile.open(fileobj=stream, mode="r:*")
        info = _nth((i for i in tf if not i.isdir() and i.name == text_name), occurrence)
        inner = tf.extractfile(info)
    except (StopIteration, KeyError, tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError("archive_error", str(exc)) from exc
    if inner is None:
        raise ArchiveError("not_regular_file")
    return io.BufferedReader(_BoundedReader(inner, min(info.size, limits.max_member_bytes), None, limits))


def _zip_member_name(info: zipfile.ZipInfo) -> bytes:
    """The member name as stored (UTF-8 when flagged, else CP437), as bytes."""
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    return info.orig_filename.encode(encoding, "surrogateescape")
