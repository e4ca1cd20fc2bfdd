"""Pure worker tasks. Each takes a picklable task and returns a picklable result value; none
touches the database. They run inside sandboxed processes (see :mod:`vidpipe.pipeline.sandbox`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vidpipe import filetype
from vidpipe.extract.digests import digest_stream
from vidpipe.sources.archive import ArchiveError, MemberEntry
from vidpipe.sources.base import ItemRef
from vidpipe.sources.limits import ArchiveLimits
from vidpipe.sources.opener import NotRegularFile, TooLarge, open_item, read_capped
from vidpipe.store.video_rows import KeyframeRow, VpdqRow

# video-2: adds the TMK level-1 signature (vidpipe.video.tmk).
STAGE_VERSIONS = {"image": "image-1", "video": "video-2", "archive": "archive-1", "other": "other-1"}
MAX_IMAGE_BYTES = 512 * 1024**2  # an image file larger than this is not decoded


@dataclass(frozen=True)
class HashTask:
    """Hash an item; with ``content_options`` also derive the content's features from the same
    bytes (images and videos; archives wait, see the runner), saving a second read and hash."""

    item_id: int
    ref: ItemRef
    limits: ArchiveLimits
    content_options: dict[str, Any] | None = None


@dataclass
class HashResult:
    item_id: int
    ok: bool
    reason: str | None = None
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    size: int | None = None
    mime: str | None = None
    label: str | None = None
    kind: str | None = None
    ext_mismatch: bool = False
    content: ContentResult | None = None


@dataclass(frozen=True)
class ContentTask:
    """Derive features of one unique content; ``ref`` is one path that holds it."""

    sha256: str
    ref: ItemRef
    label: str
    kind: str
    limits: ArchiveLimits
    options: dict[str, Any]


@dataclass
class ContentResult:
    sha256: str
    status: str                      # ok | partial | failed | skipped
    reason: str | None = None
    stage: str = ""
    width: int | None = None
    height: int | None = None
    exif: dict | None = None
    signals: list[tuple[str, str, int | None]] = field(default_factory=list)  # (signal, hex, quality)
    members: list[MemberEntry] | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    face_inputs: list[Any] = field(default_factory=list)  # FaceInput for the face stage; never stored
    # A video's rows for the frames and vpdq tables; None (not []) when the stage produced none, so
    # the writer leaves what the case holds (a failed retry must not erase an earlier partial's frames).
    keyframes: list[KeyframeRow] | None = None
    vpdq: list[VpdqRow] | None = None


def run_hash(task: HashTask) -> HashResult:
    """Read an item once: MD5, SHA-1, SHA-256, size and type by content."""
    try:
        with open_item(task.ref, task.limits) as stream:
            prefix = None
            if task.content_options is not None:
                # Keep the bytes only for images: they are decoded from exactly what was hashed. Of a
                # bigger file the first MAX_IMAGE_BYTES are kept: the image is decoded up to its real
                # end when that lies within them (e.g. a JPEG followed by padding).
                kind = filetype.sniff(stream.peek(filetype.SNIFF_BYTES)[:filetype.SNIFF_BYTES]).kind
                if kind in (filetype.KIND_IMAGE, filetype.KIND_RAW):
                    from vidpipe.pipeline.image_task import PrefixReader

                    stream = prefix = PrefixReader(stream, MAX_IMAGE_BYTES)
            digests, _ = digest_stream(stream)
            data = prefix.held() if prefix is not None else None
    except NotRegularFile:
        return HashResult(task.item_id, False, "not_regular_file")
    except ArchiveError as exc:
        return HashResult(task.item_id, False, exc.reason)
    except TooLarge:
        return HashResult(task.item_id, False, "archive_member_too_large")
    except OSError as exc:
        return HashResult(task.item_id, False, f"read_error:{exc.errno or type(exc).__name__}")
    ftype = filetype.refine_with_extension(filetype.sniff(digests.head), task.ref.extension)
    result = HashResult(task.item_id, True, None, digests.md5, digests.sha1, digests.sha256, digests.size,
                        ftype.mime, ftype.label, ftype.kind, filetype.extension_mismatch(ftype, task.ref.extension))
    # Videos wait too: their time budget comes from the container's duration (runner, video_task.probe_video).
    if task.content_options is not None and ftype.kind not in (filetype.KIND_ARCHIVE, filetype.KIND_VIDEO):
        content_task = ContentTask(digests.sha256, task.ref, ftype.label, ftype.kind, task.limits,
                                   task.content_options)
        result.content = run_content(content_task, data)
    return result


def run_content(task: ContentTask, data: Any = None) -> ContentResult:
    """Dispatch by media kind. Every path ends in a result; nothing is raised to the pool.

    ``data`` are the item's bytes when the caller already holds them (already hashed): bytes, or an
    ``image_task.HeldImage`` (the start of a bigger image)."""
    started = time.perf_counter()
    if task.kind == filetype.KIND_ARCHIVE:
        result = _archive(task)
    elif task.kind in (filetype.KIND_IMAGE, filetype.KIND_RAW):
        from vidpipe.pipeline.image_task import process_image

        result = process_image(task, data)
    elif task.kind == filetype.KIND_VIDEO:
        from vidpipe.pipeline.video_task import process_video

        result = process_video(task)
    else:
        result = _other(task)
    result.detail.setdefault("elapsed_ms", round((time.perf_counter() - started) * 1000, 1))
    return result


def read_verified(task: ContentTask, cap: int = MAX_IMAGE_BYTES) -> bytes:
    """Read the item's bytes and check they still hash to the content being processed."""
    import hashlib

    with open_item(task.ref, task.limits) as stream:
        data = read_capped(stream, cap)
    if hashlib.sha256(data).hexdigest() != task.sha256:
        raise ContentChanged(task.ref.locator)
    return data


class ContentChanged(OSError):
    """The evidence changed between hashing and feature extraction."""


def _archive(task: ContentTask) -> ContentResult:
    """One pass over the archive: members listed, limited, hashed and typed (vidpipe.pipeline.archive_task)."""
    from vidpipe.pipeline.archive_task import process_archive

    return process_archive(task)


# Image-like formats that are recognised but deliberately not decoded.
_NOT_ALLOWED_IMAGE_LABELS = {"PSD", "JXL", "JP2", "ICO", "PPM", "SVG"}
_MEDIA_EXTENSIONS = {"jpg", "jpeg", "png", "gif", "webp", "tif", "tiff", "bmp", "heic", "heif", "avif",
                     "mp4", "mov", "avi", "mkv", "webm", "3gp", "m4v", "wmv", "flv", "mpg", "mpeg", "ts"}


def _other(task: ContentTask) -> ContentResult:
    stage = "other"
    if task.label == "empty":
        return ContentResult(task.sha256, "failed", "empty_file", stage)
    if task.label in _NOT_ALLOWED_IMAGE_LABELS:
        return ContentResult(task.sha256, "failed", "format_not_allowed", stage, detail={"label": task.label})
    if task.ref.extension in _MEDIA_EXTENSIONS:
        # Named like media but is not: a finding for the examiner, and never handed to a decoder.
        return ContentResult(task.sha256, "failed", "format_not_allowed", stage,
                             detail={"label": task.label, "extension": task.ref.extension})
    return ContentResult(task.sha256, "skipped", f"not_media:{task.label}", stage)
