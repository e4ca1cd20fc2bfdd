"""Folder walking: recursive, never follows links, never opens a file, keeps odd names as bytes."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from vidpipe.sources.base import ItemRef, Source, WalkEntry


def _entry_for(path: bytes, st: os.stat_result) -> WalkEntry:
    ref = ItemRef(path)
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return WalkEntry(ref, "file", st.st_size, st.st_mtime_ns)
    if stat.S_ISLNK(mode):
        target = _readlink(path)
        return WalkEntry(ref, "symlink", None, st.st_mtime_ns, ("skipped", "symlink"),
                         extra={"link_target": target})
    if stat.S_ISFIFO(mode):
        return WalkEntry(ref, "fifo", None, st.st_mtime_ns, ("skipped", "not_regular_file"))
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return WalkEntry(ref, "device", None, st.st_mtime_ns, ("skipped", "not_regular_file"))
    if stat.S_ISSOCK(mode):
        return WalkEntry(ref, "socket", None, st.st_mtime_ns, ("skipped", "not_regular_file"))
    return WalkEntry(ref, "other", None, st.st_mtime_ns, ("skipped", "not_regular_file"))


def _readlink(path: bytes) -> str | None:
    try:
        return os.fsdecode(os.readlink(path))
    except OSError:
        return None


class FolderSource(Source):
    """A directory tree (or a single file) on a mounted file system."""

    name = "folder"

    def __init__(self, root: bytes) -> None:
        self._root = root

    @property
    def root_bytes(self) -> bytes:
        return self._root

    def discover(self) -> Iterator[WalkEntry]:
        try:
            st = os.lstat(self._root)
        except OSError as exc:
            yield WalkEntry(ItemRef(self._root), "other", None, None, ("failed", f"stat_error:{exc.errno}"))
            return
        if not stat.S_ISDIR(st.st_mode):
            yield _entry_for(self._root, st)
            return
        # (st_dev, st_ino) of every directory entered: bind mounts can loop even without symlinks.
        seen_dirs: set[tuple[int, int]] = {(st.st_dev, st.st_ino)}
        yield from self._walk_dir(self._root, seen_dirs)

    def _walk_dir(self, directory: bytes, seen_dirs: set[tuple[int, int]]) -> Iterator[WalkEntry]:
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield WalkEntry(ItemRef(directory), "other", None, None, ("failed", f"list_error:{exc.errno}"))
            return
        for entry in entries:
            path = entry.path
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield WalkEntry(ItemRef(path), "other", None, None, ("failed", f"stat_error:{exc.errno}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in seen_dirs:
                    yield WalkEntry(ItemRef(path), "other", None, st.st_mtime_ns, ("skipped", "directory_loop"))
                    continue
                seen_dirs.add(key)
                yield from self._walk_dir(path, seen_dirs)
            else:
                yield _entry_for(path, st)
