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
# Marks a typed member component in the stored form. Refs written before typed members hold
# plain names; every component written now starts with this byte, so the two never mix up.
_TYPED = b"\x01"
MEMBER_KINDS = ("member", "page", "thumbnail", "appended")


@dataclass(frozen=True)
class Member:
    """One step inside a container.

    ``kind`` is ``member`` for an archive member (``name`` as stored in the archive) or a kind of
    content derived from a file: ``page`` (page or frame ``index`` of a multi-image file),
    ``thumbnail`` (an embedded EXIF thumbnail), ``appended`` (bytes after the image's end, at byte
    offset ``index``). For archive members ``index`` tells apart members that share one name: it is
    None for the first of a name and 1, 2, ... for later ones (listing order), so the usual case
    keeps the plain name as its identity.
    """

    name: bytes
    kind: str = "member"
    index: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in MEMBER_KINDS:
            raise ValueError(f"unknown member kind {self.kind!r}")
        if b"\x00" in self.name:
            raise ValueError("a member name cannot hold NUL")

    def encode(self) -> bytes:
        index = b"" if self.index is None else str(self.index).encode()
        return _TYPED + self.kind.encode() + _TYPED + index + _TYPED + self.name

    @classmethod
    def decode(cls, raw: bytes) -> Member:
        if not raw.startswith(_TYPED):
            return cls(raw)  # a plain name from a ref stored before typed members
        kind, index, name = raw[1:].split(_TYPED, 2)
        return cls(name, kind.decode(), int(index) if index else None)

    @property
    def label(self) -> bytes:
        """How the member reads in a locator: its name, or a bracketed description of derived content."""
        if self.kind == "member":
            return self.name if self.index is None else self.name + b"[#%d]" % (self.index + 1)
        if self.kind == "page":
            return b"<page %d>" % (self.index or 0)
        if self.kind == "thumbnail":
            return b"<exif thumbnail>"
        return b"<appended data at byte %d>" % (self.index or 0)


@dataclass(frozen=True)
class ItemRef:
    """How a worker reaches an item's bytes: a file on disk, then a chain of container members.

    Identity is ``identity_bytes`` (``to_blob()``): NUL separates the steps and NUL cannot occur in a
    path or member name, so a file literally named ``a.zip!x.jpg`` and member ``x.jpg`` of ``a.zip``
    are two items, and two members of one name in one archive are two items.
    """

    fs_path: bytes
    members: tuple[Member, ...] = ()

    @property
    def locator(self) -> str:
        """Human-readable address ``/abs/a.zip!inner/x.jpg``; bytes that are not UTF-8 appear as ``\\xNN``.

        Two different items can read alike here; the identity is ``identity_bytes``.
        """
        return self.display_bytes.decode("utf-8", "backslashreplace")

    @property
    def display_bytes(self) -> bytes:
        return MEMBER_SEPARATOR.encode().join((self.fs_path, *(m.label for m in self.members)))

    @property
    def legacy_locator_bytes(self) -> bytes:
        """The identity cases made before typed members used (``!``-joined names)."""
        return MEMBER_SEPARATOR.encode().join((self.fs_path, *(m.name for m in self.members)))

    @property
    def identity_bytes(self) -> bytes:
        return self.to_blob()

    # Kept for callers that order or look up items: the stored column of that name holds the identity.
    locator_bytes = identity_bytes

    def to_blob(self) -> bytes:
        """NUL-separated form for storage; each member component typed (see ``Member.encode``)."""
        return b"\x00".join((self.fs_path, *(m.encode() for m in self.members)))

    @classmethod
    def from_blob(cls, blob: bytes) -> ItemRef:
        fs_path, *members = bytes(blob).split(b"\x00")
        return cls(fs_path, tuple(Member.decode(m) for m in members))

    def child(self, member: Member | bytes) -> ItemRef:
        if isinstance(member, bytes):
            member = Member(member)
        return ItemRef(self.fs_path, (*self.members, member))

    @property
    def extension(self) -> str:
        if self.members and self.members[-1].kind != "member":
            return ""  # derived content is typed by its bytes alone
        last = (self.members[-1].name if self.members else self.fs_path).rsplit(b"/", 1)[-1]
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


def source_for(path: str | bytes | Path, given: str | bytes | Path | None = None) -> Source:
    """The source that handles a command-line evidence argument.

    The root is resolved (``os.path.realpath``): a root reached through a link (``/link``,
    ``/link/``, a link to a file) is walked at its target, while links *inside* it stay
    ``skipped: symlink``. ``given`` is the argument as typed, when the caller resolved it already.
    """
    from vidpipe.sources.folder import FolderSource  # lazy: cycle (folder imports this module)

    raw = os.fsencode(path)
    # realpath on the argument itself, not on abspath's lexical form: "link/.." is the link target's parent.
    return FolderSource(os.path.realpath(raw), os.path.abspath(os.fsencode(given if given is not None else raw)))
