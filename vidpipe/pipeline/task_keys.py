"""Typed keys for the runner's pool tasks.

A key travels with its task into the pool and comes back with the result, so the scheduler knows
what the result is for. They were positional tuples (``("content", sha256, source_id, depth,
ref)``) read back as ``key[3]``; a named, frozen record per task kind says what each part is and
lets the scheduler dispatch on the type. Keys stay in the driver (the pool keeps them beside the
task; only the task and the result cross a process boundary), so they need no wire codec entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class HashKey:
    """An item being read and hashed; ``task`` is kept to resubmit it without content options."""

    kind: ClassVar[str] = "hash"
    item_id: int
    task: Any            # HashTask


@dataclass(frozen=True)
class ContentKey:
    """A content's feature stage, and where its derived items (archive members) hang."""

    kind: ClassVar[str] = "content"
    sha256: str
    source_id: int
    depth: int
    ref_blob: bytes      # ItemRef.to_blob() of the path the content was read from


@dataclass(frozen=True)
class VideoProbeKey:
    """A video's container probe; its answer budgets the decode submitted under ``content``."""

    kind: ClassVar[str] = "video_probe"
    content: ContentKey
    task: Any            # the ContentTask to submit once the budget is known
    size: int | None


@dataclass(frozen=True)
class FaceInputKey:
    """An already-processed image decoded again only for the model stage (faces/scene missing)."""

    kind: ClassVar[str] = "face_input"
    sha256: str


TaskKey = HashKey | ContentKey | VideoProbeKey | FaceInputKey
