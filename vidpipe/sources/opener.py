"""Opening evidence for reading inside a worker: read-only, no links followed, bounded.

Files are opened ``O_RDONLY | O_NOFOLLOW | O_NONBLOCK`` (a FIFO swapped in after the walk
cannot block us; a link swapped in is refused) and ``O_NOATIME`` where permitted, so reading
evidence changes neither its content nor its access time.
"""

from __future__ import annotations

import io
import os
import stat
from typing import BinaryIO

from vidpipe.sources.archive import ArchiveError, open_member
from vidpipe.sources.base import ItemRef
from vidpipe.sources.derived import open_derived
from vidpipe.sources.limits import ArchiveLimits


class NotRegularFile(OSError):
    """The path no longer names a regular file."""


class TooLarge(OSError):
    """The item is larger than the caller's cap."""


def open_file_readonly(path: bytes) -> BinaryIO:
    """Open a regular file read-only without following links or blocking on FIFOs.

    Every directory on the way is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to the one
    before it (``openat``), always, not only when the path is long: so a directory swapped for a
    link after discovery is refused (ELOOP/ENOTDIR) instead of followed out of the evidence, and a
    path longer than PATH_MAX is reached. Evidence roots are resolved before the walk, so a path
    the walker recorded holds no link anywhere; the cost is one ``openat`` per component.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    noatime = getattr(os, "O_NOATIME", 0)
    parent, name = open_parent_dir(path)
    try:
        try:
            fd = os.open(name, flags | noatime, dir_fd=parent)
        except PermissionError:
            fd = os.open(name, flags, dir_fd=parent)  # O_NOATIME needs ownership; read anyway
    finally:
        os.close(parent)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFile(f"not a regular file: {os.fsdecode(path)[:1024]}")
    return os.fdopen(fd, "rb", buffering=1024 * 1024)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def open_parent_dir(path: bytes) -> tuple[int, bytes]:
    """Open the directory holding ``path`` one component at a time, following no link.

    Returns its descriptor (the caller closes it) and the last component. A relative path starts
    at the working directory; ``..`` components are opened as they are (the walker never records
    them).
    """
    head, _, name = path.rpartition(b"/")
    if not name:
        raise IsADirectoryError(21, "not a file path", os.fsdecode(path)[:1024])
    fd = os.open(b"/" if path.startswith(b"/") else b".", _DIR_FLAGS)
    try:
        for part in head.split(b"/"):
            if part in (b"", b"."):
                continue
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def open_item(ref: ItemRef, limits: ArchiveLimits) -> BinaryIO:
    """A readable stream of the item's bytes, opening archive members along the chain."""
    stream: BinaryIO = open_file_readonly(ref.fs_path)
    for depth, member in enumerate(ref.members):
        is_last = depth == len(ref.members) - 1
        try:
            if member.kind == "member":
                inner = open_member(stream, member, limits)
            else:
                inner = open_derived(stream, member, limits)
        except ArchiveError:
            stream.close()
            raise
        if is_last:
            return inner
        # A nested archive needs random access: materialise it in memory, bounded.
        try:
            with inner:
                data = read_capped(inner, limits.max_inmemory_bytes)
        finally:
            stream.close()
        stream = io.BytesIO(data)
    return stream


def read_capped(stream: BinaryIO, cap: int) -> bytes:
    """Read a whole stream, refusing more than ``cap`` bytes."""
    chunks, total = [], 0
    while True:
        chunk = stream.read(min(1024 * 1024, cap + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > cap:
            raise TooLarge(f"item exceeds {cap} bytes")
