"""Content derived from a file rather than stored in an archive: pages and frames of multi-image
files, embedded EXIF thumbnails, and data appended after an image's end.

Such content is addressed like an archive member (``sources.base.Member`` with kind ``page``,
``thumbnail`` or ``appended``), so it is hashed, typed, decoded and searched like any other item.
``list_derived`` names what a decoded image holds; ``open_derived`` gives the bytes back:

- ``page`` N (N >= 1; page 0 is the file itself): a PNG rendering of the page, made with fixed
  parameters (``decode.image.render_page``). Its SHA-256 is the hash of that rendering, not of
  bytes stored in the file (a TIFF page or GIF frame has no standalone byte form).
- ``thumbnail``: the embedded JPEG bytes exactly as stored (EXIF IFD1).
- ``appended`` at byte N: the raw bytes from N (the image's real end) to the end of the file.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

from vidpipe.extract.hidden import THUMBNAIL_SCAN_BYTES, exif_thumbnail_span, image_end
from vidpipe.sources.archive import ArchiveError, MemberEntry
from vidpipe.sources.base import Member
from vidpipe.sources.limits import ArchiveLimits

# Pages/frames of one file listed as items. 1,000 covers long scanned documents and most animations;
# a file with more records `pages_capped:<total>` and ends `partial` (the rest were not examined).
MAX_PAGES = 1000
# Formats whose "frames" in Pillow are separate JPEGs stored one after another (MPO): those come
# out whole, as raw bytes, as appended data; rendering them as pages too would list them twice.
_NO_PAGES = {"JPEG", "MPO"}


def list_derived(data: bytes, total_size: int, frames: int, pil_format: str,
                 rest_is_zero: bool = True) -> tuple[list[MemberEntry], list[str]]:
    """What a decoded image holds besides its first page: (derived entries, warnings).

    ``data`` is the file's content or, for a file larger than what is held in memory, its first
    ``len(data)`` bytes of ``total_size``; ``rest_is_zero`` says the bytes not held are all zero.
    """
    entries: list[MemberEntry] = []
    warnings: list[str] = []
    if frames > 1 and pil_format not in _NO_PAGES:
        for index in range(1, min(frames, MAX_PAGES)):
            entries.append(MemberEntry(b"", None, None, None, "derived", index, "page"))
        if frames > MAX_PAGES:
            warnings.append(f"pages_capped:{frames}")
    span = exif_thumbnail_span(data)
    if span is not None:
        entries.append(MemberEntry(b"", span[1], None, None, "derived", None, "thumbnail"))
    end = image_end(data)
    if end is not None and end < total_size:
        # Zero padding hides nothing: recorded, not listed.
        if not rest_is_zero or data.count(0, end) != len(data) - end:
            entries.append(MemberEntry(b"", total_size - end, None, None, "derived", end, "appended"))
            warnings.append(f"appended_data:{end}:{total_size - end}")
        else:
            warnings.append(f"zero_padding:{end}:{total_size - end}")
    return entries, warnings


def open_derived(stream: BinaryIO, member: Member, limits: ArchiveLimits) -> BinaryIO:
    """A readable stream of the derived content ``member`` names inside ``stream`` (which it takes over)."""
    try:
        if member.kind == "page":
            return _page(stream, member.index or 0)
        if member.kind == "thumbnail":
            span = exif_thumbnail_span(stream.read(THUMBNAIL_SCAN_BYTES))
            if span is None:
                raise ArchiveError("derived_content_missing", "no EXIF thumbnail")
            return io.BufferedReader(_Window(stream, span[0], span[0] + span[1]))
        if member.kind == "appended":
            size = stream.seek(0, io.SEEK_END)
            if member.index is None or not 0 < member.index <= size:
                raise ArchiveError("derived_content_missing", f"no byte {member.index}")
            return io.BufferedReader(_Window(stream, member.index, size))
    except BaseException:
        stream.close()
        raise
    stream.close()
    raise ArchiveError("derived_content_unavailable", f"no reader for {member.kind} content")


# The renderer of the last multi-page file a page was asked of, in this worker process, kept open
# with its file: page items are hashed in name order (1, 10, 100, 101, ..., 11, 110, ...), mostly
# forward, so an animation is not decoded again from frame 0 for each of its frames.
_LAST_RENDERER: dict[str, tuple[tuple[int, ...], BinaryIO, object]] = {}


def _page(stream: BinaryIO, index: int) -> BinaryIO:
    from vidpipe.decode.image import DecodeFailure, PageRenderer  # lazy: heavy (Pillow, pillow-heif)

    key = _file_key(stream)
    cached = _LAST_RENDERER.get("last")
    try:
        if key is not None and cached is not None and cached[0] == key:
            stream.close()
            renderer = cached[2]
            if index < renderer.img.tell():  # backwards: start again from the first frame
                cached[1].seek(0)
                renderer = PageRenderer(cached[1])
                _LAST_RENDERER["last"] = (key, cached[1], renderer)
        else:
            renderer = PageRenderer(stream)
            _forget_renderer()
            if key is None:
                try:
                    return io.BufferedReader(io.BytesIO(renderer.render(index)))
                finally:
                    stream.close()
            _LAST_RENDERER["last"] = (key, stream, renderer)
        return io.BufferedReader(io.BytesIO(renderer.render(index)))
    except DecodeFailure as exc:
        _forget_renderer()
        stream.close()
        reason = "derived_content_missing" if exc.reason == "page_missing" else f"page_{exc.reason}"
        raise ArchiveError(reason, str(exc)) from exc
    except BaseException:  # a renderer in an unknown state is not reused
        _forget_renderer()
        raise


def _forget_renderer() -> None:
    cached = _LAST_RENDERER.pop("last", None)
    if cached is not None:
        cached[1].close()


def _file_key(stream: BinaryIO) -> tuple[int, ...] | None:
    """Which file, in which state, ``stream`` reads (None for in-memory streams: not cached)."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class _Window(io.RawIOBase):
    """Bytes ``start`` to ``end`` of a seekable stream, read as a stream of their own."""

    def __init__(self, inner: BinaryIO, start: int, end: int) -> None:
        self._inner, self._start, self._end, self._pos = inner, start, end, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._end - self._start}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[override]
        want = min(len(buffer), self._end - self._start - self._pos)
        if want <= 0:
            return 0
        self._inner.seek(self._start + self._pos)
        chunk = self._inner.read(want)
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def close(self) -> None:
        self._inner.close()
        super().close()
