"""Safe image decoding: a format allowlist, a pixel budget checked before decoding, strict
truncation handling, and a reduced decode for hashing.

Orientation policy for hashing: perceptual hashes are computed on the pixels *as stored*,
ignoring the EXIF Orientation tag, as Meta's PDQ reference implementations do (the C++
reference deliberately ignores EXIF rotation); this keeps our hashes comparable with hash
lists made by those tools. The orientation is recorded, and near-duplicate search compares the
query's dihedral PDQ variants, so a rotated copy still matches. Faces and scenes are extracted
from the upright (EXIF-transposed) image.
"""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from PIL import Image, ImageFile

from vidpipe import filetype

try:  # HEIC/HEIF through pillow-heif; optional at import, required by the allowlist when present.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - pillow-heif is a pinned dependency
    HEIF_AVAILABLE = False

# Sniffed label -> Pillow format names accepted for it. Anything else is never handed to a decoder.
ALLOWED_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": ("JPEG", "MPO"),
    "PNG": ("PNG",),
    "GIF": ("GIF",),
    "WEBP": ("WEBP",),
    "TIFF": ("TIFF",),
    "BMP": ("BMP",),
    "HEIC": ("HEIF",),
    "HEIF": ("HEIF",),
    "AVIF": ("AVIF", "HEIF"),
}

DEFAULT_MAX_PIXELS = 200_000_000  # 200 MP: real panoramas and scans pass, header-only bombs do not
HASH_MIN_SIDE = 512  # JPEG DCT-domain reduction keeps at least this many pixels per side for hashing
HASH_MAX_SIDE = 2048  # larger non-JPEG images are box-reduced by an integer factor before hashing


class DecodeFailure(Exception):
    """Decoding failed; ``reason`` is the record's reason code."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


@dataclass
class DecodedImage:
    """An RGB image ready for hashing plus what decoding learned."""

    rgb: Image.Image
    width: int            # stored (full-resolution) size
    height: int
    pil_format: str
    mode: str
    frames: int
    orientation: int | None
    truncated: bool
    scale: float          # rgb.width / width
    warnings: list[str] = field(default_factory=list)

    def upright(self) -> Image.Image:
        """The hashing image with EXIF orientation applied (for faces and scenes)."""
        if self.orientation and self.orientation != 1:
            return _apply_orientation(self.rgb, self.orientation)
        return self.rgb


def _apply_orientation(img: Image.Image, orientation: int) -> Image.Image:
    ops = {2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
           4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE],
           6: [Image.Transpose.ROTATE_270], 7: [Image.Transpose.TRANSVERSE], 8: [Image.Transpose.ROTATE_90]}
    for op in ops.get(orientation, []):
        img = img.transpose(op)
    return img


def decode_image(data: bytes, label: str, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 reduce_for_hashing: bool = True, min_side: int = HASH_MIN_SIDE) -> DecodedImage:
    """Decode untrusted bytes of a sniffed ``label`` under the allowlist and pixel budget.

    A PNG refused only for its text chunks (Pillow's MAX_TEXT_CHUNK / MAX_TEXT_MEMORY guard a zTXt
    or iTXt that inflates too far) is decoded again without them: the pixels are the evidence, the
    text is not needed to see them. The record says so (warning ``png_text_chunks_dropped``).
    """
    try:
        return _decode(data, label, max_pixels, reduce_for_hashing, min_side)
    except DecodeFailure as exc:
        if label != "PNG" or not _is_text_limit(exc):
            raise
    decoded = _decode(strip_png_text_chunks(data), label, max_pixels, reduce_for_hashing, min_side)
    decoded.warnings.append("png_text_chunks_dropped")
    return decoded


def _is_text_limit(exc: BaseException) -> bool:
    text = str(exc)
    return "MAX_TEXT" in text or "text chunks" in text


def strip_png_text_chunks(data: bytes) -> bytes:
    """The PNG without its tEXt, zTXt and iTXt chunks (every other byte kept, CRCs untouched)."""
    out, pos = [data[:8]], 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        end = min(pos + 12 + length, len(data))
        if data[pos + 4:pos + 8] not in (b"tEXt", b"zTXt", b"iTXt"):
            out.append(data[pos:end])
        pos = end
    out.append(data[pos:])
    return b"".join(out)


def _decode(data: bytes, label: str, max_pixels: int, reduce_for_hashing: bool, min_side: int) -> DecodedImage:
    formats = ALLOWED_FORMATS.get(label)
    if formats is None:
        raise DecodeFailure("format_not_allowed", f"{label} is not on the decode allowlist")
    with warnings.catch_warnings():
        # A decompression-bomb warning is an error here, never a log line.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            img = Image.open(io.BytesIO(data), formats=list(formats))
        except Image.DecompressionBombError as exc:
            raise DecodeFailure("bomb_limit", str(exc)) from exc
        except Image.DecompressionBombWarning as exc:
            raise DecodeFailure("bomb_limit", str(exc)) from exc
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser error is a decode error of this file
            raise DecodeFailure("decode_error", f"{type(exc).__name__}: {exc}") from exc
        width, height = img.size
        if width <= 0 or height <= 0:
            raise DecodeFailure("decode_error", f"invalid size {img.size}")
        if width * height > max_pixels:
            raise DecodeFailure("bomb_limit", f"{width}x{height} exceeds the {max_pixels} pixel budget")
        frames = int(getattr(img, "n_frames", 1) or 1)
        if reduce_for_hashing and img.format in ("JPEG", "MPO"):
            img.draft("RGB", (min_side, min_side))
        truncated = False
        warnings_found: list[str] = []
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            if not _is_truncation(exc):
                raise DecodeFailure("decode_error", f"{type(exc).__name__}: {exc}") from exc
            truncated = True
            img = _load_truncated(data, formats, min_side if reduce_for_hashing else 0)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise DecodeFailure("decode_error", f"{type(exc).__name__}: {exc}") from exc
        # Read only after load(): for PNG, getexif() itself decodes, and would hide load errors.
        orientation = _orientation(img)
        if img.format == "PNG" and not truncated:
            problem = png_integrity_problem(data)
            if problem:
                truncated = True
                warnings_found.append(problem)
        mode = img.mode
        try:
            rgb = _to_rgb(img)
        except Exception as exc:  # noqa: BLE001
            raise DecodeFailure("decode_error", f"conversion from {mode}: {exc}") from exc
        if reduce_for_hashing and max(rgb.size) > HASH_MAX_SIDE:
            factor = max(rgb.size) // (HASH_MAX_SIDE // 2)
            rgb = rgb.reduce(factor)
    return DecodedImage(rgb=rgb, width=width, height=height, pil_format=img.format or label, mode=mode,
                        frames=frames, orientation=orientation, truncated=truncated,
                        scale=rgb.width / width, warnings=warnings_found)


# Page renderings are PNGs made with fixed parameters and no metadata, so one page of one file gives
# the same bytes (and SHA-256) on every run with the same Pillow and zlib.
PAGE_PNG_COMPRESS_LEVEL = 1
_PAGE_MODES_KEPT = {"1", "L", "LA", "I;16", "I;16B", "RGB", "RGBA"}  # stored in PNG without loss


def render_page(stream: BinaryIO, index: int, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """Page or frame ``index`` of a multi-image file (TIFF, GIF, APNG, WebP, HEIF) as PNG bytes.

    An animation frame is rendered as shown (Pillow composites it with the frames before it). The
    page keeps its mode when PNG stores it losslessly, else becomes RGBA (with transparency) or RGB.
    Same allowlist and pixel budget as ``decode_image``.
    """
    return PageRenderer(stream, max_pixels=max_pixels).render(index)


class PageRenderer:
    """Renders the pages of one open multi-image file.

    Animation frames are deltas: frame k costs k frame decodes from a fresh open. One renderer
    asked for k, then j > k, continues from k (Pillow seeks forward incrementally), so keeping it
    between requests turns a pass over n frames from O(n^2) into O(n) decodes.
    """

    def __init__(self, stream: BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        label = filetype.sniff(stream.read(filetype.SNIFF_BYTES)).label
        stream.seek(0)
        formats = ALLOWED_FORMATS.get(label)
        if formats is None or label == "JPEG":
            raise DecodeFailure("format_not_allowed", f"{label} pages are not rendered")
        self.max_pixels = max_pixels
        self.img = self._guarded(lambda: Image.open(stream, formats=list(formats)))
        self.pages = self._guarded(lambda: int(getattr(self.img, "n_frames", 1) or 1))

    def _guarded(self, step):
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = self.max_pixels
            try:
                return step()
            except DecodeFailure:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise DecodeFailure("bomb_limit", str(exc)) from exc
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - any parser error is a decode error of this page
                raise DecodeFailure("decode_error", f"{type(exc).__name__}: {exc}") from exc

    def render(self, index: int) -> bytes:
        """Page ``index`` (0-based) as PNG bytes without metadata; ``DecodeFailure`` when it is missing or too big."""
        if not 0 <= index < self.pages:
            raise DecodeFailure("page_missing", f"no page {index}")
        page = self._guarded(lambda: self._page(index))
        page.info = {}
        out = io.BytesIO()
        page.save(out, "PNG", compress_level=PAGE_PNG_COMPRESS_LEVEL)
        return out.getvalue()

    def _page(self, index: int) -> Image.Image:
        img = self.img
        img.seek(index)
        if img.size[0] * img.size[1] > self.max_pixels or min(img.size) <= 0:
            raise DecodeFailure("bomb_limit", f"page {index} is {img.size[0]}x{img.size[1]}")
        img.load()
        if img.mode in _PAGE_MODES_KEPT:
            return img.copy()
        has_alpha = "A" in img.mode or "transparency" in img.info
        return img.convert("RGBA" if has_alpha else "RGB")


def png_integrity_problem(data: bytes) -> str | None:
    """Check what Pillow lets pass: chunk CRCs, a complete zlib stream (Adler-32) and IEND.

    Pillow decodes a PNG whose IDAT CRC or zlib checksum is missing without complaint; bytes are
    still missing, so such a file must not be called ``ok``.
    """
    pos, idat = 8, zlib.decompressobj()
    saw_idat = stream_ended = False
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        ctype = data[pos + 4:pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data):
            return "png_chunk_truncated"
        if zlib.crc32(data[pos + 4:end]) != int.from_bytes(data[end:end + 4], "big"):
            return "png_crc_error"
        if ctype == b"IDAT":
            saw_idat = True
            try:
                # Only the end-of-stream flag matters; decompress in bounded steps to stay cheap.
                idat.decompress(data[pos + 8:end], 0)
            except zlib.error:
                return "png_zlib_error"
            stream_ended = idat.eof
        if ctype == b"IEND":
            return None if (saw_idat and stream_ended) else "png_zlib_incomplete"
        pos = end + 4
    return "png_missing_iend"


def _orientation(img: Image.Image) -> int | None:
    try:
        value = img.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - a broken EXIF block costs the orientation only
        return None
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else None


def _is_truncation(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("truncated", "premature end", "unexpected end", "broken data stream",
                                   "buffer is not large enough", "not enough data"))


def _load_truncated(data: bytes, formats: tuple[str, ...], min_side: int) -> Image.Image:
    """Decode what survives of a truncated file (missing rows come out grey or black)."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        img = Image.open(io.BytesIO(data), formats=list(formats))
        if min_side and img.format in ("JPEG", "MPO"):
            img.draft("RGB", (min_side, min_side))
        img.load()
        return img
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DecodeFailure("decode_error", f"truncated and undecodable: {exc}") from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _to_rgb(img: Image.Image) -> Image.Image:
    # Match python-threatexchange's `Image.open(f).convert("RGB")` so PDQ agrees bit for bit.
    return img if img.mode == "RGB" else img.convert("RGB")
