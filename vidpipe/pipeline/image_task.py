"""The image stage: verified read, EXIF, safe decode, perceptual hashes. Runs in a worker."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from vidpipe import filetype
from vidpipe.decode.image import DecodeFailure, decode_image
from vidpipe.decode.model_input import model_input
from vidpipe.extract.hashers import PDQ_MIN_QUALITY, get_hasher
from vidpipe.extract.hidden import image_end
from vidpipe.pipeline.face_stage import FaceInput
from vidpipe.pipeline.tasks import MAX_IMAGE_BYTES, STAGE_VERSIONS, ContentChanged, ContentResult, ContentTask
from vidpipe.sources.archive import ArchiveError
from vidpipe.sources.derived import list_derived
from vidpipe.sources.opener import TooLarge, open_item

HASHER_NAMES = ("phash", "dhash", "pdq")


def process_image(task: ContentTask, data: bytes | HeldImage | None = None) -> ContentResult:
    """``data``, when given, are the very bytes that were hashed to ``task.sha256`` (or, for a file
    bigger than ``MAX_IMAGE_BYTES``, a ``HeldImage`` of its start).

    Besides its own features, the result lists the content derived from it (further pages and
    frames, the EXIF thumbnail, data after the image's real end) as ``members``; the runner records
    them as child items, so each is hashed, decoded and face-scanned on its own (see
    :mod:`vidpipe.sources.derived`)."""
    stage = "image"
    try:
        held = read_verified_prefix(task) if data is None else HeldImage.of(data)
        data = held.data
        image_bytes = real_image_bytes(held)
    except ContentChanged:
        return ContentResult(task.sha256, "failed", "content_changed_during_run", stage)
    except TooLarge:
        return ContentResult(task.sha256, "skipped", "too_large_to_decode", stage)
    except ArchiveError as exc:
        return ContentResult(task.sha256, "failed", exc.reason, stage)
    except OSError as exc:
        return ContentResult(task.sha256, "failed", f"read_error:{exc.errno or type(exc).__name__}", stage)

    result = ContentResult(task.sha256, "ok", None, stage)
    warnings: list[str] = []
    exif = _read_exif(data, task.label, warnings)
    if exif is not None:
        result.exif = exif

    if task.kind == filetype.KIND_RAW:
        # Camera RAW: metadata is read; pixels need a RAW developer we do not ship.
        result.status, result.reason = "partial", "raw_not_decoded"
        result.detail["warnings"] = warnings
        return result

    max_pixels = int(task.options.get("max_pixels") or 0) or None
    try:
        decoded = decode_image(image_bytes, task.label, **({"max_pixels": max_pixels} if max_pixels else {}))
    except DecodeFailure as exc:
        result.status, result.reason = "failed", exc.reason
        result.detail.update({"error": str(exc)[:500], "warnings": warnings})
        return result
    _add_derived(task, result, held, decoded, warnings)
    data_for_faces = image_bytes if task.options.get("model_inputs") else b""
    del data, image_bytes, held
    result.width, result.height = decoded.width, decoded.height
    result.detail.update({"pil_format": decoded.pil_format, "mode": decoded.mode, "frames": decoded.frames,
                          "orientation": decoded.orientation, "hash_scale": round(decoded.scale, 4),
                          "stage_version": STAGE_VERSIONS[stage]})
    warnings.extend(decoded.warnings)
    if decoded.truncated:
        result.status, result.reason = "partial", "truncated"
    for name in HASHER_NAMES:
        try:
            value = get_hasher(name).compute(decoded.rgb)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed hasher costs that hash, not the file
            warnings.append(f"hash_error:{name}:{type(exc).__name__}")
            result.status, result.reason = "partial", result.reason or "hash_error"
            continue
        result.signals.append((value.signal, value.hex, value.quality))
        if value.signal == "pdq" and value.quality is not None and value.quality < PDQ_MIN_QUALITY:
            result.detail["pdq_low_quality"] = True
    if task.options.get("model_inputs"):
        face_input = _face_input(task, data_for_faces, decoded, warnings)
        if face_input is not None:
            result.face_inputs.append(face_input)
    result.detail["warnings"] = warnings
    return result


def _add_derived(task: ContentTask, result: ContentResult, held: HeldImage, decoded, warnings: list[str]) -> None:
    """List the derived content; past the nesting limit or the page cap the file is ``partial``."""
    members, found = list_derived(held.data, held.size, decoded.frames, decoded.pil_format, held.rest_is_zero)
    warnings.extend(found)
    if any(w.startswith("pages_capped") for w in found) and result.status == "ok":
        result.status, result.reason = "partial", "pages_capped"
    if members and len(task.ref.members) >= task.limits.max_depth:
        # Derived content of derived content (an appended file's own appended file, ...) stops
        # where nested archives stop.
        warnings.append(f"derived_depth_limit:{len(members)}")
        if result.status == "ok":
            result.status, result.reason = "partial", "derived_depth_limit"
        return
    if members:
        result.members = members
        result.detail["derived"] = {kind: sum(m.member_kind == kind for m in members)
                                    for kind in ("page", "thumbnail", "appended")}


@dataclass(frozen=True)
class HeldImage:
    """An image's bytes as held in memory: all of them, or the first ``len(data)`` of ``size``."""

    data: bytes
    size: int
    rest_is_zero: bool = True  # every byte after ``data`` is zero (padding, nothing to look at)

    @classmethod
    def of(cls, data: bytes | HeldImage) -> HeldImage:
        """``data`` as a HeldImage (whole bytes are held in full)."""
        return data if isinstance(data, HeldImage) else cls(data, len(data))


class PrefixReader:
    """Passes a stream's bytes through, keeping the first ``cap`` of them and noting whether every
    byte after those is zero (C-speed ``count``, so hashing is not slowed)."""

    def __init__(self, stream, cap: int) -> None:
        self._stream, self._cap, self._kept = stream, cap, bytearray()
        self._size, self._rest_is_zero = 0, True

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        room = self._cap - len(self._kept)
        if room > 0:
            self._kept += chunk[:room]
        if len(chunk) > room and self._rest_is_zero:
            self._rest_is_zero = chunk.count(0, max(room, 0)) == len(chunk) - max(room, 0)
        self._size += len(chunk)
        return chunk

    def held(self) -> HeldImage:
        """The kept bytes, handed over once (the buffer is released, so they are held only once)."""
        data, self._kept = bytes(self._kept), bytearray()
        return HeldImage(data, self._size, self._rest_is_zero)


def real_image_bytes(held: HeldImage) -> bytes:
    """What to decode: all the bytes, or, when only the start of a bigger file is held, the image
    up to its real end (JPEG EOI after the scans, PNG IEND, GIF trailer, WebP RIFF size).

    Raises ``TooLarge`` when that end is not within what is held."""
    if len(held.data) >= held.size:
        return held.data
    end = image_end(held.data)
    if end is None:
        raise TooLarge(f"image larger than {len(held.data)} bytes")
    return held.data[:end]


def read_verified_prefix(task: ContentTask, cap: int = MAX_IMAGE_BYTES) -> HeldImage:
    """Stream the whole item through SHA-256 (it must still be ``task.sha256``) keeping its first
    ``cap`` bytes."""
    digest = hashlib.sha256()
    with open_item(task.ref, task.limits) as stream:
        reader = PrefixReader(stream, cap)
        while chunk := reader.read(1024 * 1024):
            digest.update(chunk)
    if digest.hexdigest() != task.sha256:
        raise ContentChanged(task.ref.locator)
    return reader.held()


def _face_input(task: ContentTask, data: bytes, decoded, warnings: list[str]):
    """A second, larger decode for the face stage (hashes keep their own, flag-independent decode)."""
    try:
        prepared = model_input(data, task.label, max_pixels=int(task.options.get("max_pixels") or 0) or 200_000_000)
    except DecodeFailure as exc:
        warnings.append(f"face_decode:{exc.reason}")
        return None
    return FaceInput(task.sha256, prepared.pixels, prepared.scale)


def face_input_task(task: ContentTask):
    """Worker entry for a resumed run: decode only what the face stage needs."""
    try:
        data = real_image_bytes(read_verified_prefix(task))
    except (OSError, ArchiveError) as exc:
        return ContentResult(task.sha256, "failed", getattr(exc, "reason", None) or "read_error", "faces")
    warnings: list[str] = []
    item = _face_input(task, data, None, warnings)
    if item is None:
        return ContentResult(task.sha256, "failed", warnings[0] if warnings else "face_decode", "faces")
    return item


def _read_exif(data: bytes, label: str, warnings: list[str]) -> dict | None:
    try:
        from vidpipe.extract.exif import read_exif

        record = read_exif(io.BytesIO(data), label)
    except MemoryError:
        warnings.append("exif_memory_limit")
        return None
    except Exception as exc:  # noqa: BLE001 - EXIF is best effort; the pixels still count
        warnings.append(f"exif_error:{type(exc).__name__}")
        return None
    warnings.extend(record.warnings)
    return record.to_contract()
