"""The ``Source`` interface and the values it yields.

A source only *discovers* (names, sizes, kinds from ``lstat``); it never opens content. Opening
happens inside sandboxed workers through :mod:`vidpipe.sources.opener`, so a hostile name or
file costs one record, not the run. Disk images can come later as another ``Source``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MEMBER_SEPARATOR = "!"


@dataclass(frozen=True)
class ItemRef:
    """How a worker reaches an item's bytes: a file on disk, then a chain of archive members."""

    fs_path: bytes
    members: tuple[bytes, ...] = ()

    @property
    def locator(self) -> str:
        """Human-readable address ``/abs/a.zip!inner/x.jpg``; bytes that are not UTF-8 appear as ``\\xNN``.

        The exact name is ``locator_bytes``; this text form is for people and JSON.
        """
        return self.locator_bytes.decode("utf-8", "backslashreplace")

    @property
    def locator_bytes(self) -> bytes:
        return MEMBER_SEPARATOR.encode().join((self.fs_path, *self.members))

    def to_blob(self) -> bytes:
        """NUL-separated form for storage (NUL cannot occur in a path or member name)."""
        return b"\x00".join((self.fs_path, *self.members))

    @classmethod
    def from_blob(cls, blob: bytes) -> ItemRef:
        fs_path, *members = bytes(blob).split(b"\x00")
        return cls(fs_path, tuple(members))

    def child(self, member: bytes) -> ItemRef:
        return ItemRef(self.fs_path, (*self.members, member))

    @property
    def extension(self) -> str:
        last = (self.members[-1] if self.members else self.fs_path).rsplit(b"/", 1)[-1]
        if b"." not in last.lstrip(b"."):
            return ""
        return os.fsdecode(last.rsplit(b".", 1)[-1]).lower()[:16]


@dataclass(frozen=True)
class WalkEntry:
    """One discovered path. ``preset`` holds a final (status, reason) decided without opening it."""

    ref: ItemRef
    fs_kind: str  # file | member | symlink | fifo | device | socket | other
    size: int | None
    mtime_ns: int | None
    preset: tuple[str, str] | None = None
    depth: int = 0
    extra: dict = field(default_factory=dict)


class Source(ABC):
    """Something evidence can be discovered in."""

    name: str

    @abstractmethod
    def discover(self) -> Iterator[WalkEntry]:
        """Yield every item, in a deterministic order, without opening any content."""

    @property
    @abstractmethod
    def root_bytes(self) -> bytes:
        """The absolute root as given (bytes, so undecodable names survive)."""


def source_for(path: str | bytes | Path) -> Source:
    """The source that handles a command-line evidence argument."""
    from vidpipe.sources.folder import FolderSource

    raw = os.fsencode(path)
    return FolderSource(os.path.abspath(raw))
