"""The archive stage: one pass over an archive lists, limits, hashes and types every member.

Before, each member was its own item whose worker re-opened the archive and walked to the member
(quadratic: a ``.tar.gz`` re-decompressed from its start for every member, a zip re-read its
central directory). Now the archive's content task streams through the archive once
(:func:`vidpipe.sources.archives.scan`) and, for each member, computes MD5/SHA-1/SHA-256, size and
type by content, and, for small images, the image stage's features (and face-stage input) from
the bytes it already holds. Each member comes back as a ``MemberEntry`` carrying its ``HashResult``;
the writer stores item, digests and content in the same transaction as the archive's own result,
so a run killed at any moment either has the whole archive pass or none of it (resume redoes it).

What still opens a member on its own (``sources.opener.open_item``): content that the pass leaves
for later -- videos (their budget comes from a probe of the file), images above
``INLINE_IMAGE_MAX_BYTES`` or past the pass's budgets, nested archives -- and a resumed run's face
input for an image whose faces were not stored yet. Those are one open per distinct content, not per
member, and are costly to decode anyway; hashing and typing (the per-member cost that made big
archives quadratic) never need a second open.

Budgets keep one pass inside one worker's limits: the content computed in the pass is bounded in
time (``INLINE_SECONDS``) and in face-input pixels carried back (``INLINE_RESULT_BYTES``); past
either, members are still hashed and typed and their content runs as ordinary content tasks.
"""

from __future__ import annotations

import io
import time
from dataclasses import replace
from typing import BinaryIO

from vidpipe import filetype
from vidpipe.extract.digests import digest_stream
from vidpipe.pipeline.tasks import ContentResult, ContentTask, HashResult, run_content
from vidpipe.sources.archive import SUPPORTED_LABELS, ArchiveError, MemberEntry
from vidpipe.sources.opener import TooLarge, open_item, read_capped

INLINE_IMAGE_MAX_BYTES = 32 * 1024**2   # "small image": decoded in the pass from the bytes just hashed
INLINE_SECONDS = 20.0                   # content work per pass; below the 60 s default task timeout
INLINE_RESULT_BYTES = 192 * 1024**2     # face-input pixels one result may carry (worker cap: 2 GiB)
_HEAD = filetype.SNIFF_BYTES


def process_archive(task: ContentTask) -> ContentResult:
    """List, limit, hash and type every member of one archive in one pass."""
    stage = "archive"
    if task.label not in SUPPORTED_LABELS:
        return ContentResult(task.sha256, "skipped", f"archive_format_not_supported:{task.label}", stage)
    if len(task.ref.members) >= task.limits.max_depth:
        return ContentResult(task.sha256, "skipped", "archive_depth_limit", stage)
    try:
        with open_item(task.ref, task.limits) as stream:
            if task.ref.members:  # nested archives need random access (zip directory, 7z header)
                stream = io.BytesIO(read_capped(stream, task.limits.max_inmemory_bytes))
            members, warnings, inlined = _pass(stream, task)
    except ArchiveError as exc:
        status = "skipped" if exc.reason == "archive_format_not_supported" else "failed"
        reason = exc.reason if status == "failed" else f"{exc.reason}:{task.label}:{exc}"[:200]
        return ContentResult(task.sha256, status, reason, stage)
    except TooLarge:
        return ContentResult(task.sha256, "skipped", "archive_too_large_to_nest", stage)
    except OSError as exc:
        return ContentResult(task.sha256, "failed", f"read_error:{exc.errno or type(exc).__name__}", stage)
    status, reason = "ok", None
    if any(w.startswith("archive_truncated") for w in warnings):
        status, reason = "partial", "archive_truncated"
    elif any(w.startswith("archive_member_limit:listed=") for w in warnings):
        status, reason = "partial", "archive_member_limit"  # members past the cap were never listed
    hashed = sum(1 for m in members if m.hashed is not None)
    return ContentResult(task.sha256, status, reason, stage, members=members,
                         detail={"members": len(members), "warnings": warnings, "hashed_in_pass": hashed,
                                 "content_in_pass": inlined})


def _pass(stream: BinaryIO, task: ContentTask) -> tuple[list[MemberEntry], list[str], int]:
    from vidpipe.sources.archives import scan

    warnings: list[str] = []
    members: list[MemberEntry] = []
    started = time.monotonic()
    carried = 0
    inlined = 0
    seen: set[str] = set()
    inline_on = task.options.get("inline_members", True)
    for entry, opener in scan(stream, task.label, task.limits, warnings):
        if opener is None:
            members.append(entry)
            continue
        ref = task.ref.child(entry.key)
        budget_left = inline_on and time.monotonic() - started < INLINE_SECONDS and carried < INLINE_RESULT_BYTES
        try:
            with opener() as member_stream:
                kind = filetype.sniff(member_stream.peek(_HEAD)[:_HEAD]).kind
                keep = INLINE_IMAGE_MAX_BYTES if budget_left and kind in (filetype.KIND_IMAGE, filetype.KIND_RAW) else 0
                digests, data = digest_stream(member_stream, keep_bytes=keep)
        except ArchiveError as exc:
            # A cut stream: this member is incomplete (partial); the scan records where it stopped.
            status = "partial" if exc.reason == "archive_truncated" else "skipped" if exc.reason == "encrypted" else "failed"
            members.append(replace(entry, preset=(status, exc.reason)))
            continue
        ftype = filetype.refine_with_extension(filetype.sniff(digests.head), ref.extension)
        result = HashResult(0, True, None, digests.md5, digests.sha1, digests.sha256, digests.size, ftype.mime,
                            ftype.label, ftype.kind, filetype.extension_mismatch(ftype, ref.extension))
        if data is not None and digests.sha256 not in seen and ftype.kind in (filetype.KIND_IMAGE, filetype.KIND_RAW):
            content_task = ContentTask(digests.sha256, ref, ftype.label, ftype.kind, task.limits, task.options)
            result.content = run_content(content_task, data)  # data: the whole member
            carried += sum(f.pixels.nbytes for f in result.content.face_inputs)
            inlined += 1
        seen.add(digests.sha256)
        members.append(replace(entry, hashed=result))
    return members, warnings, inlined
