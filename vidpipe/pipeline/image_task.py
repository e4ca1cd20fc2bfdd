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


def process_image(task: ContentTask) -> ContentResult:
    stage = "image"
    try:
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
    result.detail["warnings"] = warnings
    return result


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
