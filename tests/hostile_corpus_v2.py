"""Hostile-input corpus, second part: the kinds issue 11 found that the first corpus lacks.

``build_hostile_corpus_v2(root)`` writes every case into ``root`` and returns, per path relative to
``root``, the final states the pipeline may give it (``ExpectationV2``, an ``hostile_corpus.Expectation``
with two more checks). Keys name items the way ``vidpipe export`` shows them: archive members as
``"x.zip!member"`` (a repeated member name as ``"x.zip!member[#2]"``), content derived from a file
as ``"x.tif!<page 1>"``, ``"x.jpg!<exif thumbnail>"``, ``"x.jpg!<appended data at byte N>"``.

Nothing here is committed: the corpus is made in code, seeded, and reuses the generators of the
tests that pin each fix (test_item_identity, test_walk_paths, test_hidden_content,
test_archives_stream, test_video_budget), so a kind means the same bytes everywhere.

Two kinds cannot be removed by ``shutil.rmtree`` on Python 3.11 (the 1,000-level tree recurses
past the interpreter's limit): call ``remove_hostile_corpus_v2(root)`` instead.
"""

from __future__ import annotations

import io
import os
import sys
import warnings
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path

_TESTS = Path(__file__).resolve().parent
if str(_TESTS) not in sys.path:  # imported from tools/ as well as from pytest
    sys.path.insert(0, str(_TESTS))

import hostile_corpus as hc  # noqa: E402
from hostile_corpus import ANY_REASON, DECODE_ERROR, TRUNCATED, Expectation  # noqa: E402
from test_archives_stream import rar4, sevenzip, zip_deflate64  # noqa: E402
from test_hidden_content import encoded, exif_with_thumbnail, picture, png_chunk, with_chunks_after_ihdr  # noqa: E402
from test_item_identity import _tar as plain_tar  # noqa: E402
from test_item_identity import _zip as plain_zip  # noqa: E402
from test_walk_paths import make_chain, remove_chain  # noqa: E402

DEEP_LEVELS = 1000  # issue 11 item 4: ~1,000 levels raised RecursionError
DEEP_DIR = b"d"
# 24 names of 201 bytes: the file's path is past 4,096 bytes (Linux PATH_MAX) under any root.
LONG_NAMES = [b"%02d" % i + b"x" * 199 for i in range(24)]
PADDING_BYTES = 600 * 1024**2  # issue 11 item 3: "> 512 MB of padding"; sparse, costs no disk
PAGES = 3  # pages/frames in each multi-image file: page 0 is the file, pages 1..2 derived items
CSV_FORMULA_MAKE = '=HYPERLINK("http://127.0.0.1:9/x","click")'
TRUNC_TAR_MEMBERS = 20


@dataclass(frozen=True)
class ExpectationV2(Expectation):
    """An Expectation with two checks the first corpus did not need.

    ``count``: how many distinct items are exported under this very path (a sibling file literally
    named ``a.zip!x.jpg`` and member ``x.jpg`` of ``a.zip`` read alike; both must be there).
    ``csv``: cells the CSV export's row for this path must match (column -> fnmatch pattern).
    """

    count: int = 1
    csv: dict[str, str] = field(default_factory=dict)


def expect_v2(why: str, *, count: int = 1, csv: dict[str, str] | None = None, **kw) -> ExpectationV2:
    """``hostile_corpus.expect`` plus ``count`` and ``csv``."""
    base = hc.expect(why, **kw)
    return ExpectationV2(**{f.name: getattr(base, f.name) for f in fields(Expectation)}, count=count,
                         csv=dict(csv or {}))


def libarchive_available() -> bool:
    """7z and RAR are read through libarchive; without it they end skipped (format not supported)."""
    from vidpipe.sources.archives.libarchive import available

    return available()


def _animated(frames: list, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], **kw)
    return out.getvalue()


def _short_video(path: Path) -> None:
    from vidpipe.testing import make_checkerboard_video  # imports PyAV: only when the corpus is built

    make_checkerboard_video(path, seconds=2.0, width=160, height=120, fps=10, shot_s=1.0)


def _key(*parts: bytes) -> str:
    return os.fsdecode(b"/".join(parts))


def build_hostile_corpus_v2(root: Path, padding_bytes: int = PADDING_BYTES,
                            video: bool = True) -> dict[str, ExpectationV2]:
    """Write every issue-11 hostile kind under ``root``; return the acceptable final state per path.

    ``padding_bytes``: zero bytes after the padded JPEG (sparse); ``video``: include the short video.
    Every file's content is distinct, so each path gets its own export line.
    """
    root.mkdir(parents=True, exist_ok=True)
    broot = os.fsencode(root)
    cases: dict[str, ExpectationV2] = {}
    seeds = iter(range(5000, 6000))  # apart from test_hidden_content's seeds: no shared content

    def put(rel: str, data: bytes, exp: ExpectationV2) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        cases[rel] = exp

    def jpeg(size: tuple[int, int] = (96, 96)) -> bytes:
        return encoded(picture(next(seeds), size), "JPEG", quality=90)

    ok_image = dict(ok=True, hashed=True)
    container = dict(ok=True, partial=ANY_REASON, skipped=ANY_REASON)

    # --- item 1: identity. A sibling named like a member; repeated member names ---------------
    red, green, blue, white, black = jpeg(), jpeg(), jpeg(), jpeg(), jpeg()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile's "Duplicate name": the point of the case
        put("identity/a.zip", plain_zip([("x.jpg", red), ("x.jpg", green)]),
            expect_v2("zip holding two members named x.jpg", **container))
    cases["identity/a.zip!x.jpg"] = expect_v2(
        "member x.jpg of a.zip AND sibling file literally named 'a.zip!x.jpg': two items", count=2,
        **ok_image)
    put("identity/a.zip!x.jpg", blue, cases["identity/a.zip!x.jpg"])
    cases["identity/a.zip!x.jpg[#2]"] = expect_v2("second zip member with the same name x.jpg", **ok_image)
    put("identity/b.tar", plain_tar([("y.jpg", white), ("y.jpg", black)]),
        expect_v2("tar holding two members named y.jpg", **container))
    cases["identity/b.tar!y.jpg"] = expect_v2("first tar member named y.jpg", **ok_image)
    cases["identity/b.tar!y.jpg[#2]"] = expect_v2("second tar member with the same name y.jpg", **ok_image)

    # --- item 4: paths that used to abort the run ------------------------------------------------
    (root / "deep").mkdir()
    make_chain(broot + b"/deep", (DEEP_DIR for _ in range(DEEP_LEVELS)), b"bottom.jpg", jpeg())
    cases[_key(b"deep", *[DEEP_DIR] * DEEP_LEVELS, b"bottom.jpg")] = expect_v2(
        f"file at the bottom of a {DEEP_LEVELS}-level directory tree", **ok_image)
    (root / "long").mkdir()
    make_chain(broot + b"/long", iter(LONG_NAMES), b"deep.jpg", jpeg())
    cases[_key(b"long", *LONG_NAMES, b"deep.jpg")] = expect_v2(
        "file whose path is longer than PATH_MAX (24 names of 201 bytes)", **ok_image)
    try:
        make_chain(broot, iter([b"names\xff\xfe"]), b"caf\xe9.jpg", jpeg())  # Latin-1 name in a bad dir
        make_chain(broot, iter([b"names_sjis"]), b"\x83e\x83X\x83g.jpg", jpeg())  # Shift-JIS bytes
        cases[_key(b"names\xff\xfe", b"caf\xe9.jpg")] = expect_v2(
            "Latin-1 file name in a directory whose name is not UTF-8", **ok_image)
        cases[_key(b"names_sjis", b"\x83e\x83X\x83g.jpg")] = expect_v2(
            "Shift-JIS file name (not UTF-8)", **ok_image)
    except (OSError, UnicodeError):  # a file system that refuses non-UTF-8 names
        pass

    # --- item 3: hidden content ------------------------------------------------------------------
    page = dict(ok=True, hashed=True, mime="image/png")
    multi = [("multi/pages.tif", "TIFF", {"compression": "tiff_deflate"}, "multi-page TIFF"),
             ("multi/anim.gif", "GIF", {"duration": 100, "loop": 0}, "animated GIF"),
             ("multi/anim.png", "PNG", {"duration": 100, "loop": 0}, "animated PNG (APNG)"),
             ("multi/anim.webp", "WEBP", {"duration": 100, "loop": 0, "lossless": True}, "animated WebP")]
    for rel, fmt, kw, what in multi:
        frames = [picture(next(seeds)) for _ in range(PAGES)]
        put(rel, _animated(frames, fmt, **kw), expect_v2(f"{what}, {PAGES} distinct pages/frames", **ok_image))
        for index in range(1, PAGES):
            cases[f"{rel}!<page {index}>"] = expect_v2(f"{what}: page/frame {index}", **page)

    thumb = jpeg((80, 80))
    put("hidden/exif_thumb.jpg", encoded(picture(next(seeds)), "JPEG", exif=exif_with_thumbnail(thumb)),
        expect_v2("JPEG whose EXIF thumbnail shows another picture", **ok_image))
    cases["hidden/exif_thumb.jpg!<exif thumbnail>"] = expect_v2(
        "the embedded EXIF thumbnail, hashed as stored", ok=True, hashed=True, mime="image/jpeg")

    outer_jpeg, inner_png = jpeg(), encoded(picture(next(seeds)), "PNG")
    put("hidden/polyglot_jpeg_png.jpg", outer_jpeg + inner_png,
        expect_v2("polyglot: a PNG appended after the JPEG's end", **ok_image))
    cases[f"hidden/polyglot_jpeg_png.jpg!<appended data at byte {len(outer_jpeg)}>"] = expect_v2(
        "the PNG appended to the JPEG", ok=True, hashed=True, mime="image/png")
    outer_png, inner_jpeg = encoded(picture(next(seeds)), "PNG"), jpeg()
    put("hidden/polyglot_png_jpeg.png", outer_png + inner_jpeg,
        expect_v2("polyglot: a JPEG appended after the PNG's IEND", **ok_image))
    cases[f"hidden/polyglot_png_jpeg.png!<appended data at byte {len(outer_png)}>"] = expect_v2(
        "the JPEG appended to the PNG", ok=True, hashed=True, mime="image/jpeg")

    bomb = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (8 * 1024**2), 9))
    put("hidden/ztxt_bomb.png", with_chunks_after_ihdr(encoded(picture(next(seeds)), "PNG"), [bomb]),
        expect_v2("PNG with a zTXt chunk inflating to 8 MiB (past Pillow's text limit)", **ok_image))

    padded = jpeg()
    put("hidden/zero_padded.jpg", padded, expect_v2(
        f"JPEG followed by {padding_bytes // 1024**2} MiB of zero padding (sparse)", **ok_image))
    os.truncate(root / "hidden/zero_padded.jpg", len(padded) + padding_bytes)

    # --- item 8: archives -------------------------------------------------------------------------
    tar_members = [(f"m{i:02d}.jpg", jpeg()) for i in range(TRUNC_TAR_MEMBERS)]
    from test_archives_stream import _tar as gz_tar  # the truncation test's writer (mode w:gz)

    whole = gz_tar(tar_members)
    put("archives/cut.tar.gz", whole[: len(whole) // 2], expect_v2(
        f".tar.gz of {TRUNC_TAR_MEMBERS} JPEGs cut in half", partial="archive_truncated"))
    cases["archives/cut.tar.gz!m00.jpg"] = expect_v2("first member, well before the damage", **ok_image)
    cases["archives/cut.tar.gz!m*.jpg"] = expect_v2(
        "members of the cut .tar.gz: intact before the cut, the damaged one partial/failed",
        ok=True, partial=frozenset({"archive_truncated", TRUNCATED}),
        failed=frozenset({TRUNCATED, DECODE_ERROR, "archive_truncated"}), pattern=True, required=False)

    fmt_members = lambda: [("x.jpg", jpeg()), ("x.jpg", jpeg())]  # noqa: E731 - fresh content each time
    put("archives/deflate64.zip", zip_deflate64(fmt_members()),
        expect_v2("zip whose members use Deflate64 (method 9)", ok=True))
    for name in ("x.jpg", "x.jpg[#2]"):
        cases[f"archives/deflate64.zip!{name}"] = expect_v2("Deflate64 zip member", **ok_image)
    if libarchive_available():
        for rel, data, what in (("archives/a.7z", sevenzip(fmt_members()), "7z archive"),
                                ("archives/b.rar", rar4(fmt_members()), "RAR 4 archive")):
            put(rel, data, expect_v2(f"{what} (read through libarchive)", ok=True))
            for name in ("x.jpg", "x.jpg[#2]"):
                cases[f"{rel}!{name}"] = expect_v2(f"{what} member", **ok_image)
    else:  # no writer either: the signatures alone are what sniffing sees
        not_supported = dict(skipped="archive_format_not_supported:*")
        put("archives/a.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24),
            expect_v2("7z archive, libarchive missing", **not_supported))
        put("archives/b.rar", rar4(fmt_members()), expect_v2("RAR 4 archive, libarchive missing", **not_supported))

    # --- item 13: what a spreadsheet would run or misread -----------------------------------------
    put("csv/hyperlink_make.jpg", hc.make_jpeg(next(seeds), hc.exif_with_gps(CSV_FORMULA_MAKE, 48.8584, 2.2945)),
        expect_v2("EXIF Make is a spreadsheet formula (=HYPERLINK)", gps=(48.8584, 2.2945),
                  csv={"make": "'" + CSV_FORMULA_MAKE}, **ok_image))
    put("csv/=SUM(A1).jpg", jpeg(), expect_v2("file name starting with '='", **ok_image))
    put("csv/\u202egpj.exe", jpeg(), expect_v2(
        "bidi override (RLO) in the name: reads as 'exe.jpg'", csv={"paths": "*\\u202egpj.exe"},
        fields={"extension_mismatch": True}, **ok_image))
    put("csv/a\u2066b\u2069\u200f.jpg", jpeg(), expect_v2("bidi isolate and RLM marks in the name",
                                                          csv={"paths": "*a\\u2066b\\u2069\\u200f.jpg"},
                                                          **ok_image))

    # --- a short video ------------------------------------------------------------------------------
    if video:
        (root / "video").mkdir()
        _short_video(root / "video/short.mp4")
        cases["video/short.mp4"] = expect_v2("2 s 160x120 H.264 video", ok=True, mime="video/mp4")
    return cases


def remove_hostile_corpus_v2(root: Path) -> None:
    """Delete what ``build_hostile_corpus_v2`` wrote (the deep tree bottom-up first)."""
    import shutil

    deep = os.fsencode(root) + b"/deep"
    if os.path.isdir(deep + b"/" + DEEP_DIR):
        remove_chain(deep, DEEP_DIR, DEEP_LEVELS)
    shutil.rmtree(root, ignore_errors=True)

