"""Type by content: a small magic-number sniffer for the formats examiners meet.

The extension is never trusted; it is compared with the sniffed type so that a mismatch
(a JPEG named ``.bmp``, a playlist named ``.mp4``) is recorded as a finding.
"""

from __future__ import annotations

from dataclasses import dataclass

SNIFF_BYTES = 4096

# Media kinds that decide which stages run.
KIND_IMAGE = "image"
KIND_VIDEO = "video"
KIND_ARCHIVE = "archive"
KIND_RAW = "raw_image"
KIND_AUDIO = "audio"
KIND_OTHER = "other"


@dataclass(frozen=True)
class FileType:
    """What the content says the file is."""

    mime: str
    kind: str
    label: str  # short format name, e.g. "JPEG", "HEIC", "CR3"


UNKNOWN = FileType("application/octet-stream", KIND_OTHER, "unknown")
EMPTY = FileType("application/x-empty", KIND_OTHER, "empty")

_FTYP_BRANDS: dict[bytes, FileType] = {
    b"heic": FileType("image/heic", KIND_IMAGE, "HEIC"),
    b"heix": FileType("image/heic", KIND_IMAGE, "HEIC"),
    b"heim": FileType("image/heic", KIND_IMAGE, "HEIC"),
    b"heis": FileType("image/heic", KIND_IMAGE, "HEIC"),
    b"hevc": FileType("image/heic-sequence", KIND_IMAGE, "HEIC"),
    b"mif1": FileType("image/heif", KIND_IMAGE, "HEIF"),
    b"msf1": FileType("image/heif-sequence", KIND_IMAGE, "HEIF"),
    b"avif": FileType("image/avif", KIND_IMAGE, "AVIF"),
    b"avis": FileType("image/avif", KIND_IMAGE, "AVIF"),
    b"crx ": FileType("image/x-canon-cr3", KIND_RAW, "CR3"),
    b"qt  ": FileType("video/quicktime", KIND_VIDEO, "MOV"),
    b"3gp4": FileType("video/3gpp", KIND_VIDEO, "3GP"),
    b"3gp5": FileType("video/3gpp", KIND_VIDEO, "3GP"),
    b"3gp6": FileType("video/3gpp", KIND_VIDEO, "3GP"),
    b"3g2a": FileType("video/3gpp2", KIND_VIDEO, "3G2"),
    b"M4A ": FileType("audio/mp4", KIND_AUDIO, "M4A"),
}
_MP4 = FileType("video/mp4", KIND_VIDEO, "MP4")

# Extensions we expect for each label; used only to flag mismatches.
_EXTENSIONS: dict[str, set[str]] = {
    "JPEG": {"jpg", "jpeg", "jpe", "jfif"}, "PNG": {"png", "apng"}, "GIF": {"gif"},
    "WEBP": {"webp"}, "TIFF": {"tif", "tiff"}, "BMP": {"bmp", "dib"}, "HEIC": {"heic", "heif", "hif"},
    "HEIF": {"heif", "heic", "hif"}, "AVIF": {"avif"}, "CR3": {"cr3"}, "CR2": {"cr2"},
    "NEF": {"nef", "nrw"}, "DNG": {"dng"}, "ARW": {"arw", "sr2", "srf"}, "ORF": {"orf"},
    "RW2": {"rw2", "raw"}, "RAF": {"raf"}, "MP4": {"mp4", "m4v"}, "MOV": {"mov", "qt"},
    "3GP": {"3gp"}, "3G2": {"3g2"}, "MKV": {"mkv", "webm", "mka"}, "AVI": {"avi"},
    "MPEG-TS": {"ts", "m2ts", "mts"}, "MPEG-PS": {"mpg", "mpeg", "vob"}, "FLV": {"flv"},
    "ASF": {"wmv", "asf", "wma"}, "ZIP": {"zip", "cbz", "jar", "docx", "xlsx", "pptx", "apk"},
    "TAR": {"tar"}, "GZIP": {"gz", "tgz"}, "BZIP2": {"bz2", "tbz2"}, "XZ": {"xz", "txz"},
    "7Z": {"7z"}, "RAR": {"rar"}, "PDF": {"pdf"}, "PSD": {"psd"}, "JXL": {"jxl"},
    "JP2": {"jp2", "j2k", "jpf"}, "ICO": {"ico"}, "M3U": {"m3u", "m3u8"}, "PPM": {"ppm", "pgm", "pbm", "pnm"},
    "SVG": {"svg"}, "M4A": {"m4a"}, "MP3": {"mp3"}, "WAV": {"wav"}, "CRW": {"crw"},
}


def sniff(head: bytes) -> FileType:
    """Identify a file from its first bytes (``SNIFF_BYTES`` are enough)."""
    if not head:
        return EMPTY
    h = head
    if h.startswith(b"\xff\xd8\xff"):
        return FileType("image/jpeg", KIND_IMAGE, "JPEG")
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileType("image/png", KIND_IMAGE, "PNG")
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return FileType("image/gif", KIND_IMAGE, "GIF")
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return FileType("image/webp", KIND_IMAGE, "WEBP")
    if h[:4] == b"RIFF" and h[8:12] == b"AVI ":
        return FileType("video/x-msvideo", KIND_VIDEO, "AVI")
    if h[:4] == b"RIFF" and h[8:12] == b"WAVE":
        return FileType("audio/wav", KIND_AUDIO, "WAV")
    if h[:2] == b"BM" and len(h) >= 14:
        return FileType("image/bmp", KIND_IMAGE, "BMP")
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return _sniff_tiff_family(h)
    if h[:4] in (b"IIRO", b"IIRS"):
        return FileType("image/x-olympus-orf", KIND_RAW, "ORF")
    if h[:4] == b"IIU\x00":
        return FileType("image/x-panasonic-rw2", KIND_RAW, "RW2")
    if h.startswith(b"FUJIFILMCCD-RAW"):
        return FileType("image/x-fuji-raf", KIND_RAW, "RAF")
    if h[:2] == b"II" and h[6:14] == b"HEAPCCDR":
        return FileType("image/x-canon-crw", KIND_RAW, "CRW")
    if len(h) >= 12 and h[4:8] == b"ftyp":
        return _sniff_ftyp(h)
    if h.startswith(b"\x1a\x45\xdf\xa3"):
        return FileType("video/x-matroska", KIND_VIDEO, "MKV")
    if h[:3] == b"FLV":
        return FileType("video/x-flv", KIND_VIDEO, "FLV")
    if h.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return FileType("video/x-ms-asf", KIND_VIDEO, "ASF")
    if h[:4] == b"\x00\x00\x01\xba":
        return FileType("video/mpeg", KIND_VIDEO, "MPEG-PS")
    if len(h) >= 377 and h[0] == 0x47 and h[188] == 0x47 and h[376] == 0x47:
        return FileType("video/mp2t", KIND_VIDEO, "MPEG-TS")
    if len(h) >= 389 and h[4] == 0x47 and h[196] == 0x47 and h[388] == 0x47:  # M2TS: 192-byte packets
        return FileType("video/mp2t", KIND_VIDEO, "MPEG-TS")
    if h[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return FileType("application/zip", KIND_ARCHIVE, "ZIP")
    if len(h) >= 262 and h[257:262] == b"ustar":
        return FileType("application/x-tar", KIND_ARCHIVE, "TAR")
    if h[:2] == b"\x1f\x8b":
        return FileType("application/gzip", KIND_ARCHIVE, "GZIP")
    if h[:3] == b"BZh":
        return FileType("application/x-bzip2", KIND_ARCHIVE, "BZIP2")
    if h[:6] == b"\xfd7zXZ\x00":
        return FileType("application/x-xz", KIND_ARCHIVE, "XZ")
    if h[:6] == b"7z\xbc\xaf\x27\x1c":
        return FileType("application/x-7z-compressed", KIND_ARCHIVE, "7Z")
    if h[:7] == b"Rar!\x1a\x07\x00" or h[:8] == b"Rar!\x1a\x07\x01\x00":
        return FileType("application/vnd.rar", KIND_ARCHIVE, "RAR")
    if h[:5] == b"%PDF-":
        return FileType("application/pdf", KIND_OTHER, "PDF")
    if h[:4] == b"8BPS":
        return FileType("image/vnd.adobe.photoshop", KIND_OTHER, "PSD")
    if h[:2] == b"\xff\x0a" or h[:12] == b"\x00\x00\x00\x0cJXL \x0d\x0a\x87\x0a":
        return FileType("image/jxl", KIND_OTHER, "JXL")
    if h[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
        return FileType("image/jp2", KIND_OTHER, "JP2")
    if h[:4] == b"\x00\x00\x01\x00":
        return FileType("image/x-icon", KIND_OTHER, "ICO")
    if h[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6") and h[2:3] in (b"\n", b" ", b"\r", b"\t"):
        return FileType("image/x-portable-anymap", KIND_OTHER, "PPM")
    if h[:3] == b"ID3" or (h[0] == 0xFF and (h[1] & 0xE0) == 0xE0 and h[1] != 0xFF):
        return FileType("audio/mpeg", KIND_AUDIO, "MP3")
    text = h.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"#EXTM3U"):
        return FileType("audio/x-mpegurl", KIND_OTHER, "M3U")
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text[:1024]):
        return FileType("image/svg+xml", KIND_OTHER, "SVG")
    if _looks_like_text(h):
        return FileType("text/plain", KIND_OTHER, "text")
    return UNKNOWN


def _sniff_tiff_family(h: bytes) -> FileType:
    # CR2 carries "CR" at offset 8; NEF/DNG/ARW are plain TIFF containers and are told apart
    # by tags deeper in the file, so the extension check handles them (no mismatch flagged).
    if h[8:10] == b"CR":
        return FileType("image/x-canon-cr2", KIND_RAW, "CR2")
    return FileType("image/tiff", KIND_IMAGE, "TIFF")


def _sniff_ftyp(h: bytes) -> FileType:
    major = h[8:12]
    if major in _FTYP_BRANDS:
        return _FTYP_BRANDS[major]
    box_size = int.from_bytes(h[0:4], "big")
    compatible = h[16:min(len(h), max(16, box_size))]
    for i in range(0, len(compatible) - 3, 4):
        brand = compatible[i:i + 4]
        if brand in (b"heic", b"heix", b"mif1", b"avif", b"crx "):
            return _FTYP_BRANDS[brand]
    return _MP4


def _looks_like_text(h: bytes) -> bool:
    sample = h[:1024]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


MEDIA_EXTENSIONS = {ext for label in ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "HEIC", "AVIF", "MP4", "MOV",
                                       "3GP", "MKV", "AVI", "MPEG-TS", "MPEG-PS", "FLV", "ASF", "CR3", "CR2",
                                       "NEF", "DNG", "ARW") for ext in _EXTENSIONS[label]}

TIFF_RAW_EXTENSIONS = {"nef", "nrw", "dng", "arw", "sr2", "srf", "pef", "3fr", "erf", "kdc", "mos", "iiq", "srw"}


def refine_with_extension(file_type: FileType, extension: str) -> FileType:
    """Name TIFF-container RAW files by extension; the content alone cannot tell NEF from DNG."""
    ext = extension.lower().lstrip(".")
    if file_type.label == "TIFF" and ext in TIFF_RAW_EXTENSIONS:
        return FileType(f"image/x-{ext}", KIND_RAW, ext.upper())
    return file_type


def extension_mismatch(file_type: FileType, extension: str) -> bool:
    """True when the extension names a different format than the content is."""
    ext = extension.lower().lstrip(".")
    if not ext or file_type is EMPTY:
        return False
    if file_type is UNKNOWN or file_type.label == "text":
        # Text or unknown bytes behind a media name (a playlist called .mp4) is a finding.
        return ext in MEDIA_EXTENSIONS
    expected = _EXTENSIONS.get(file_type.label)
    if expected is None:
        return False
    if file_type.label == "TIFF" and ext in TIFF_RAW_EXTENSIONS:
        return False
    return ext not in expected
