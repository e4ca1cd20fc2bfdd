"""Folder walking: never follows links, never opens a file, keeps odd names as bytes.

The walk is iterative and goes through directory file descriptors (``openat`` with
``O_NOFOLLOW | O_DIRECTORY``), so a tree 100,000 levels deep costs no recursion, a path longer than
PATH_MAX is still reached, and a directory swapped for a link during the walk is never entered.
Order is deterministic: depth first, each directory's entries sorted by name bytes.
"""

from __future__ import annotations

import collections
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from vidpipe.sources.base import ItemRef, Source, WalkEntry

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# Directory descriptors held at once. Deeper trees keep only the deepest ones open and re-open an
# ancestor by name (checking its (st_dev, st_ino)) when it has more subdirectories to enter, so a
# very deep tree never runs into the open-file limit (often 1,024).
MAX_OPEN_DIRS = 64

# One directory entry: name bytes, its lstat (or the error that gave), and a link's target.
_Listing = tuple[bytes, "os.stat_result | OSError", "str | None"]


def _entry_for(path: bytes, st: os.stat_result, link_target: str | None = None) -> WalkEntry:
    ref = ItemRef(path)
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return WalkEntry(ref, "file", st.st_size, st.st_mtime_ns)
    if stat.S_ISLNK(mode):
        return WalkEntry(ref, "symlink", None, st.st_mtime_ns, ("skipped", "symlink"),
                         extra={"link_target": link_target})
    if stat.S_ISFIFO(mode):
        return WalkEntry(ref, "fifo", None, st.st_mtime_ns, ("skipped", "not_regular_file"))
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return WalkEntry(ref, "device", None, st.st_mtime_ns, ("skipped", "not_regular_file"))
    if stat.S_ISSOCK(mode):
        return WalkEntry(ref, "socket", None, st.st_mtime_ns, ("skipped", "not_regular_file"))
    return WalkEntry(ref, "other", None, st.st_mtime_ns, ("skipped", "not_regular_file"))


def _failed(path: bytes, reason: str, mtime_ns: int | None = None) -> WalkEntry:
    return WalkEntry(ItemRef(path), "other", None, mtime_ns, ("failed", reason))


def _readlink(name: bytes, dir_fd: int | None = None) -> str | None:
    try:
        return os.fsdecode(os.readlink(name, dir_fd=dir_fd))
    except OSError:
        return None


def _list_dir(fd: int) -> list[_Listing]:
    """Every entry of the open directory ``fd`` with its lstat, sorted by name bytes."""
    out: list[_Listing] = []
    with os.scandir(fd) as it:  # names come back as str (surrogate-escaped); fsencode restores the bytes
        for entry in it:
            name = os.fsencode(entry.name)
            target = None
            try:
                st: os.stat_result | OSError = entry.stat(follow_symlinks=False)  # fstatat(fd, name)
            except OSError as exc:
                st = exc
            else:
                if stat.S_ISLNK(st.st_mode):
                    target = _readlink(name, fd)
            out.append((name, st, target))
    out.sort(key=lambda e: e[0])
    return out


class DirectoryChanged(OSError):
    """A directory re-opened by name is no longer the one the walk listed."""


@dataclass(eq=False)
class _Dir:
    """One directory on the walk's stack."""

    name: bytes                   # component under the parent (the whole path for the root)
    ident: tuple[int, int]        # (st_dev, st_ino) when listed
    path_len: int                 # length of its path in the walker's buffer
    entries: list[_Listing]
    pos: int = 0
    fd: int | None = field(default=None, repr=False)


class _Walker:
    """Depth-first walk of one directory tree with a bounded set of open directory descriptors."""

    def __init__(self, root: bytes, root_st: os.stat_result) -> None:
        self.root = root
        self.root_ident = (root_st.st_dev, root_st.st_ino)
        self.path = bytearray(root.rstrip(b"/"))  # the top directory's path; "/" is held as b""
        self.stack: list[_Dir] = []
        self.open: collections.deque[_Dir] = collections.deque()  # frames holding an fd, shallowest first

    def walk(self) -> Iterator[WalkEntry]:
        try:
            fd = _open_checked(self.root, None, self.root_ident)
            entries = _listed(fd)
        except OSError as exc:
            yield _failed(self.root, _reason(exc))
            return
        # (st_dev, st_ino) of every directory entered: bind mounts can loop even without symlinks.
        seen: set[tuple[int, int]] = {self.root_ident}
        self._push(_Dir(self.root, self.root_ident, len(self.path), entries), fd)
        try:
            while self.stack:
                top = self.stack[-1]
                if top.pos >= len(top.entries):
                    self._pop()
                    continue
                name, st, target = top.entries[top.pos]
                top.pos += 1
                path = bytes(self.path) + b"/" + name
                if isinstance(st, OSError):
                    yield _failed(path, f"stat_error:{st.errno}")
                elif not stat.S_ISDIR(st.st_mode):
                    yield _entry_for(path, st, target)
                else:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        yield WalkEntry(ItemRef(path), "other", None, st.st_mtime_ns, ("skipped", "directory_loop"))
                        continue
                    seen.add(key)
                    try:
                        fd = _open_checked(name, self._fd_of_top(), key)
                        entries = _listed(fd)
                    except OSError as exc:
                        yield _failed(path, _reason(exc), st.st_mtime_ns)
                        continue
                    self.path += b"/" + name
                    self._push(_Dir(name, key, len(self.path), entries), fd)
        finally:
            while self.open:
                _close(self.open.pop())

    # -- the stack and its descriptors --------------------------------------------------------
    def _push(self, frame: _Dir, fd: int) -> None:
        frame.fd = fd
        self.stack.append(frame)
        self.open.append(frame)
        while len(self.open) > MAX_OPEN_DIRS:
            _close(self.open.popleft())

    def _pop(self) -> None:
        frame = self.stack.pop()
        if frame.fd is not None:
            self.open.pop()  # the deepest open frame is the top one
            _close(frame)
        if self.stack:
            del self.path[self.stack[-1].path_len:]

    def _fd_of_top(self) -> int:
        """The top directory's descriptor, re-opened from its nearest open ancestor when it was closed."""
        top = self.stack[-1]
        if top.fd is not None:
            return top.fd
        # Frames without a descriptor are a run just above the top: open them one by one downwards.
        start = len(self.stack) - 1
        while start > 0 and self.stack[start - 1].fd is None:
            start -= 1
        for depth in range(start, len(self.stack)):
            frame = self.stack[depth]
            parent = self.stack[depth - 1].fd if depth else None
            fd = _open_checked(frame.name, parent, frame.ident)
            frame.fd = fd
            self.open.append(frame)
            while len(self.open) > MAX_OPEN_DIRS:
                _close(self.open.popleft())
        assert top.fd is not None
        return top.fd


def _open_checked(name: bytes, dir_fd: int | None, ident: tuple[int, int]) -> int:
    """Open a directory without following a link and check it is the one that was stat'ed."""
    fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != ident:
        os.close(fd)
        raise DirectoryChanged("directory replaced during the walk")
    return fd


def _listed(fd: int) -> list[_Listing]:
    try:
        return _list_dir(fd)
    except BaseException:
        os.close(fd)
        raise


def _close(frame: _Dir) -> None:
    if frame.fd is not None:
        os.close(frame.fd)
        frame.fd = None


def _reason(exc: OSError) -> str:
    if isinstance(exc, DirectoryChanged):
        return "changed_during_walk"
    return f"list_error:{exc.errno}"


class FolderSource(Source):
    """A directory tree (or a single file) on a mounted file system.

    ``root`` is the path walked, already resolved (``os.path.realpath``) by the caller so that a
    root reached through a link is walked, not skipped; ``given`` is the path as typed, kept for
    the record.
    """

    name = "folder"

    def __init__(self, root: bytes, given: bytes | None = None) -> None:
        self._root = root
        self._given = given if given is not None else root

    @property
    def root_bytes(self) -> bytes:
        return self._root

    @property
    def given_bytes(self) -> bytes:
        """The root as given on the command line (made absolute, links not resolved)."""
        return self._given

    def discover(self) -> Iterator[WalkEntry]:
        try:
            st = os.lstat(self._root)
        except OSError as exc:
            yield _failed(self._root, f"stat_error:{exc.errno}")
            return
        if not stat.S_ISDIR(st.st_mode):
            yield _entry_for(self._root, st, _readlink(self._root) if stat.S_ISLNK(st.st_mode) else None)
            return
        yield from _Walker(self._root, st).walk()
