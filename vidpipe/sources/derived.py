"""Content derived from a file rather than stored in an archive: pages and frames of multi-image
files, embedded EXIF thumbnails, and data appended after an image's end.

Such content is addressed like an archive member (``sources.base.Member`` with kind ``page``,
``thumbnail`` or ``appended``), so it is hashed, typed, decoded and searched like any other item.
"""

from __future__ import annotations

from typing import BinaryIO

from vidpipe.sources.archive import ArchiveError
from vidpipe.sources.base import Member
from vidpipe.sources.limits import ArchiveLimits


def open_derived(stream: BinaryIO, member: Member, limits: ArchiveLimits) -> BinaryIO:
    """A readable stream of the derived content ``member`` names inside ``stream``."""
    raise ArchiveError("derived_content_unavailable", f"no reader for {member.kind} content yet")
