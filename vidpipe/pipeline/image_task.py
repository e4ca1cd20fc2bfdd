"""The image stage: verified read, EXIF, safe decode, perceptual hashes. Runs in a worker."""

from __future__ import annotations

import io

from vidpipe import filetype
from vidpipe.decode.image import DecodeFailure, decode_image
from vidpipe.extract.hashers import PDQ_MIN_QUALITY, get_hasher
from vidpipe.pipeline.tasks import STAGE_VERSIONS, ContentChanged, ContentResult, ContentTask, read_verified
from vidpipe.sources.archive import ArchiveError
from vidpipe.sources.opener import TooLarge

HASHER_NAMES = ("phash", "dhash", "pdq")


def process_image(task: ContentTask, data: bytes | None = None) -> ContentResult:
    """``data``, when given, are the very bytes that were hashed to ``task.sha256``."""
    stage = "image"
    try:
        if data is None:
            data = read_verified(task)
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
        decoded = decode_image(data, task.label, **({"max_pixels": max_pixels} if max_pixels else {}))
    except DecodeFailure as exc:
        result.status, result.reason = "failed", exc.reason
        result.detail.update({"error": str(exc)[:500], "warnings": warnings})
        return result
    data_for_faces = data if task.options.get("model_inputs") else b""
    del data
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


def _face_input(task: ContentTask, data: bytes, decoded, warnings: list[str]):
    """A second, larger decode for the face stage (hashes keep their own, flag-independent decode)."""
    from vidpipe.decode.image import _apply_orientation
    from vidpipe.pipeline.face_stage import FACE_DECODE_MIN_SIDE, make_face_input

    try:
        big = decode_image(data, task.label, min_side=FACE_DECODE_MIN_SIDE,
                           max_pixels=int(task.options.get("max_pixels") or 0) or 200_000_000)
    except DecodeFailure as exc:
        warnings.append(f"face_decode:{exc.reason}")
        return None
    upright = _apply_orientation(big.rgb, big.orientation) if big.orientation else big.rgb
    full_width = big.height if big.orientation in (5, 6, 7, 8) else big.width
    item = make_face_input(task.sha256, upright)
    item.scale = item.pixels.shape[1] / full_width
    return item


def face_input_task(task: ContentTask):
    """Worker entry for a resumed run: decode only what the face stage needs."""
    from vidpipe.pipeline.tasks import ContentResult as _Result

    try:
        data = read_verified(task)
    except (OSError, ArchiveError) as exc:
        return _Result(task.sha256, "failed", getattr(exc, "reason", None) or "read_error", "faces")
    warnings: list[str] = []
    item = _face_input(task, data, None, warnings)
    if item is None:
        return _Result(task.sha256, "failed", warnings[0] if warnings else "face_decode", "faces")
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
