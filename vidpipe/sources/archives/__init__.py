"""Archives read in one forward pass: every member listed, limited and opened in stored order.

Why one pass, and not an index of member offsets: the pass is the only plan that is linear for
every format we read. A zip has a central directory (the offsets come free, and ``zipfile`` opens a
member with one seek), but a ``.tar.gz``/``.tar.bz2``/``.tar.xz`` or a solid 7z/RAR block can only
be reached by decompressing everything before it, so "open member k" costs O(k) and opening each
member on its own costs O(n^2) (1,000/4,000/10,000 members took 1.7/21/127 s that way). Walking
the archive once and handing each member's bytes to the caller as they stream past costs O(n) for
all of them. The archive task (:mod:`vidpipe.pipeline.archive_task`) hashes and types every member
in that pass, so a member is never opened again just to be hashed.

Interface: :func:`scan` yields ``(MemberEntry, opener)`` per member; ``opener`` is None for a
member that must not be opened (its ``preset`` says why), else a callable returning a bounded
stream that is valid until the next member is yielded. Every format module has one function of
that shape (``scan_zip``, ``scan_tar``, ``scan_libarchive``); this module adds what all share:
occurrence numbers for repeated names, the archive-wide byte budget, and the count of passes.

Damage is reported, never silent: a stream that breaks mid-archive ends the scan with an
``archive_truncated:...`` warning after every member before the damage was yielded, and a listing
stopped at the member cap says how many members it did not list (``archive_member_limit:...``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import BinaryIO

from vidpipe.sources.archive import ArchiveError, MemberEntry, ratio_exceeded, unsafe_name
from vidpipe.sources.limits import ArchiveLimits

Opener = Callable[[], BinaryIO]

ZIP_LABELS = {"ZIP"}
TAR_LABELS = {"TAR", "GZIP", "BZIP2", "XZ"}
LIBARCHIVE_LABELS = {"7Z", "RAR"}

# How many times archives were opened, by purpose: "pass" (a whole-archive scan) and "member"
# (one member reached on its own, :func:`vidpipe.sources.archive.open_member`). Per process;
# tests and the bench read it to show that ingest opens an archive once, not once per member.
OPENS: collections.Counter[str] = collections.Counter()


def scan(stream: BinaryIO, label: str, limits: ArchiveLimits,
         warnings: list[str]) -> Iterator[tuple[MemberEntry, Opener | None]]:
    """Yield every file member of the archive ``stream`` (of sniffed type ``label``) in stored order.

    Warnings (member cap, total-bytes cap, truncation) are appended to ``warnings``. Raises
    :class:`ArchiveError` only when the archive cannot be opened at all.
    """
    OPENS["pass"] += 1
    if label in ZIP_LABELS:
        from vidpipe.sources.archives.zip import scan_zip as scanner  # lazy: cycle
    elif label in TAR_LABELS:
        from vidpipe.sources.archives.tar import scan_tar as scanner  # lazy: cycle
    elif label in LIBARCHIVE_LABELS:
        from vidpipe.sources.archives.libarchive import scan_libarchive as scanner  # lazy: cycle
    else:
        raise ArchiveError("archive_format_not_supported", label)
    seen: dict[bytes, int] = {}
    total = 0
    over_total = False
    for entry, opener in scanner(stream, label, limits, warnings):
        n = seen.get(entry.name, 0)
        seen[entry.name] = n + 1
        if n:  # the first of a name keeps the plain name as its identity (sources.base.Member)
            entry = replace(entry, index=n)
        if entry.preset is None and entry.size is not None:
            total += entry.size
            if total > limits.max_total_bytes:
                entry, over_total = replace(entry, preset=("skipped", "archive_total_limit")), True
        yield entry, (opener if entry.preset is None else None)
    if over_total:
        warnings.append("archive_total_limit")


def preset_for(name: str, *, encrypted: bool, link: bool, regular: bool, size: int | None,
               compressed: int | None, limits: ArchiveLimits) -> tuple[str, str] | None:
    """The final (status, reason) of a member that must not be opened, else None (all formats)."""
    if unsafe_name(name):
        return ("skipped", "unsafe_member_name")
    if encrypted:
        return ("skipped", "encrypted")
    if link:
        return ("skipped", "symlink")
    if not regular:
        return ("skipped", "not_regular_file")
    if size is not None and size > limits.max_member_bytes:
        return ("skipped", "archive_member_too_large")
    if size is not None and compressed is not None and ratio_exceeded(size, compressed, limits):
        return ("skipped", "archive_ratio_limit")
    return None


def member_limit_warning(listed: int, unlisted: int, exact: bool = True) -> str:
    """The warning for a listing stopped at the member cap: how many were not listed."""
    return f"archive_member_limit:listed={listed}:unlisted={unlisted}{'' if exact else '+'}"
