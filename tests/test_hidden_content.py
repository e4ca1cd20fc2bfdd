"""Hidden content is not missed (issue 11, item 3): every page and frame of multi-image files, the
EXIF thumbnail and data appended after an image's real end become derived items of their own,
hashed, decoded and searchable; a PNG text bomb and a JPEG with 600 MB of padding still decode.

All evidence is generated here; each picture is a different random 8x8 colour grid (so its
perceptual hash differs from the others).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, conservation_holds, export_records, run_json
from PIL import Image

from vidpipe.extract.hidden import exif_thumbnail_span, image_end


def picture(seed: int, size: tuple[int, int] = (256, 256)) -> Image.Image:
    grid = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(grid).resize(size, Image.Resampling.NEAREST)


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def exif_with_thumbnail(thumb: bytes) -> bytes:
    """An APP1 EXIF payload: empty IFD0, then IFD1 pointing at ``thumb`` (JPEGInterchangeFormat)."""
    ifd1 = 14
    offset = ifd1 + 2 + 2 * 12 + 4
    tiff = (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<HI", 0, ifd1) + struct.pack("<H", 2)
            + struct.pack("<HHII", 0x0201, 4, 1, offset) + struct.pack("<HHII", 0x0202, 4, 1, len(thumb))
            + struct.pack("<I", 0) + thumb)
    return b"Exif\x00\x00" + tiff


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def with_chunks_after_ihdr(png: bytes, chunks: list[bytes]) -> bytes:
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def records_by_path(case: Path) -> dict[str, dict]:
    return {p: r for r in export_records(case) for p in r["paths"]}


def pdq_of(img: Image.Image) -> str:
    from vidpipe.extract.hashers import get_hasher

    return get_hasher("pdq").compute(img.convert("RGB")).hex


# -- the byte parsers ------------------------------------------------------------------------------

def test_real_end_of_jpeg_png_gif_webp_ignores_ends_inside_the_image() -> None:
    thumb = encoded(picture(1, (64, 64)), "JPEG")
    plain = encoded(picture(2), "JPEG", exif=exif_with_thumbnail(thumb))  # an EOI inside APP1
    progressive = encoded(picture(3), "JPEG", progressive=True)
    for image in (plain, progressive, encoded(picture(4), "PNG"), encoded(picture(5), "GIF"),
                  encoded(picture(6), "WEBP", lossless=True)):
        assert image_end(image) == len(image)
        assert image_end(image + b"PK\x03\x04 hidden") == len(image)
        assert image_end(image[:-1]) is None  # the end is not there
    span = exif_thumbnail_span(plain)
    assert span is not None and plain[span[0]:span[0] + span[1]] == thumb


# -- one ingest of every kind of hiding place ----------------------------------------------------

@pytest.fixture(scope="module")
def hidden_case(tmp_path_factory):
    evidence = tmp_path_factory.mktemp("hidden") / "evidence"
    evidence.mkdir()
    made: dict[str, object] = {}
    tif = [picture(10 + i) for i in range(3)]
    tif[0].save(evidence / "pages.tif", save_all=True, append_images=tif[1:], compression="tiff_deflate")
    made["tif"] = tif
    for name, base, kw in (("anim.gif", 20, {}), ("anim.png", 30, {}), ("anim.webp", 40, {"lossless": True})):
        frames = [picture(base + i) for i in range(3)]
        frames[0].save(evidence / name, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw)
        made[name] = frames
    thumb = encoded(picture(51, (96, 96)), "JPEG")
    (evidence / "thumb.jpg").write_bytes(encoded(picture(50), "JPEG", exif=exif_with_thumbnail(thumb)))
    made["thumb"] = thumb
    hidden_png, hidden_jpeg = encoded(picture(61), "PNG"), encoded(picture(71), "JPEG", quality=95)
    (evidence / "polyglot.jpg").write_bytes(encoded(picture(60), "JPEG") + hidden_png)
    (evidence / "polyglot.png").write_bytes(encoded(picture(70), "PNG") + hidden_jpeg)
    made["hidden_png"], made["hidden_jpeg"] = hidden_png, hidden_jpeg
    # zTXt chunks that inflate past Pillow's limits: one past MAX_TEXT_CHUNK, many past MAX_TEXT_MEMORY.
    bomb_one = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (8 * 1024**2), 9))
    bomb_many = [png_chunk(b"zTXt", b"c%d\x00\x00" % n + zlib.compress(b"B" * 900_000, 9)) for n in range(80)]
    (evidence / "ztxt_chunk.png").write_bytes(with_chunks_after_ihdr(encoded(picture(80), "PNG"), [bomb_one]))
    (evidence / "ztxt_memory.png").write_bytes(with_chunks_after_ihdr(encoded(picture(81), "PNG"), bomb_many))
    case = tmp_path_factory.mktemp("hidden_case") / "case"
    summary = run_json("ingest", str(evidence), "--case", str(case), "--no-faces", "--no-scenes", "--json")
    return evidence, case, summary, records_by_path(case), made


def test_every_page_and_frame_is_an_item_with_its_own_hashes(hidden_case) -> None:
    evidence, _, summary, records, made = hidden_case
    assert summary["status"] == "completed" and conservation_holds(summary)
    for name, frames in (("pages.tif", made["tif"]), ("anim.gif", made["anim.gif"]), ("anim.png", made["anim.png"]),
                         ("anim.webp", made["anim.webp"])):
        parent = records[str(evidence / name)]
        assert parent["status"] == "ok"
        assert str(evidence / name) + "!<page 0>" not in records  # page 0 is the file itself
        shas = {parent["sha256"]}
        for index in (1, 2):
            page = records[f"{evidence / name}!<page {index}>"]
            assert page["status"] == "ok", page
            assert page["kind"] == "image" and page["mime"] == "image/png" and page["hashes"]["phash"]
            # The page's own picture: its PDQ is that of the frame drawn, not of page 0.
            assert page["hashes"]["pdq"] == pdq_of(frames[index]), (name, index)
            assert page["hashes"]["phash"] != parent["hashes"]["phash"]
            shas.add(page["sha256"])
        assert len(shas) == 3
        assert str(evidence / name) + "!<page 3>" not in records


def test_exif_thumbnail_is_an_item_hashed_as_stored(hidden_case) -> None:
    evidence, _, _, records, made = hidden_case
    thumb = records[f"{evidence / 'thumb.jpg'}!<exif thumbnail>"]
    assert thumb["status"] == "ok" and thumb["sha256"] == sha(made["thumb"])
    assert thumb["width"] == 96 and thumb["hashes"]["pdq"] != records[str(evidence / "thumb.jpg")]["hashes"]["pdq"]


def test_data_appended_after_the_image_is_an_item_and_decoded(hidden_case) -> None:
    evidence, _, _, records, made = hidden_case
    for name, hidden, mime in (("polyglot.jpg", made["hidden_png"], "image/png"),
                               ("polyglot.png", made["hidden_jpeg"], "image/jpeg")):
        size = (evidence / name).stat().st_size
        offset = size - len(hidden)
        item = records[f"{evidence / name}!<appended data at byte {offset}>"]
        assert item["status"] == "ok" and item["mime"] == mime and item["sha256"] == sha(hidden)
        assert item["hashes"]["pdq"] and item["width"] == 256
        parent = records[str(evidence / name)]
        assert parent["status"] == "ok" and f"appended_data:{offset}:{len(hidden)}" in parent["warnings"]


def test_png_text_bomb_still_decodes(hidden_case) -> None:
    evidence, _, _, records, _ = hidden_case
    for name, seed in (("ztxt_chunk.png", 80), ("ztxt_memory.png", 81)):
        record = records[str(evidence / name)]
        assert record["status"] == "ok", record
        assert "png_text_chunks_dropped" in record["warnings"]
        assert record["hashes"]["pdq"] == pdq_of(picture(seed))


def test_derived_items_are_linked_to_their_parent_and_rerun_adds_nothing(hidden_case) -> None:
    import sqlite3

    evidence, case, summary, _, _ = hidden_case
    conn = sqlite3.connect(case / "case.sqlite")
    rows = conn.execute("SELECT locator, parent_sha256, depth, fs_kind FROM items WHERE locator LIKE '%!<%'").fetchall()
    # 4 files x 2 pages, 1 thumbnail, 2 appended files
    assert len(rows) == 11
    parents = {os.fsdecode(p): sha(p.read_bytes()) for p in evidence.iterdir()}
    for locator, parent_sha256, depth, fs_kind in rows:
        assert parent_sha256 == parents[locator.split("!")[0]] and depth == 1 and fs_kind == "derived"
    again = run_json("ingest", str(evidence), "--case", str(case), "--no-faces", "--no-scenes", "--json")
    assert again["discovered"] == summary["discovered"] and again["ok"] == summary["ok"]


# -- limits -----------------------------------------------------------------------------------------

def test_page_cap_marks_the_parent_partial() -> None:
    from vidpipe.sources.derived import MAX_PAGES, list_derived

    entries, warnings = list_derived(b"", 0, MAX_PAGES + 5, "TIFF")
    assert len(entries) == MAX_PAGES - 1 and warnings == [f"pages_capped:{MAX_PAGES + 5}"]
    assert [e.index for e in entries[:2]] == [1, 2] and {e.member_kind for e in entries} == {"page"}


def test_jpeg_followed_by_600_mb_of_padding_is_hashed_whole_and_decoded(tmp_path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    jpeg = encoded(picture(90), "JPEG", quality=92)
    path = evidence / "padded.jpg"
    path.write_bytes(jpeg)
    padding = 600 * 1024**2
    os.truncate(path, len(jpeg) + padding)  # sparse: costs no disk
    summary = run_json("ingest", str(evidence), "--case", str(tmp_path / "case"), "--no-faces", "--no-scenes",
                       "--json")
    record = records_by_path(tmp_path / "case")[str(path)]
    digest = hashlib.sha256(jpeg)
    zeros = bytes(1024**2)
    for _ in range(padding // len(zeros)):
        digest.update(zeros)
    assert record["sha256"] == digest.hexdigest() and record["size"] == len(jpeg) + padding
    assert record["status"] == "ok" and record["width"] == 256
    assert record["hashes"]["pdq"] == pdq_of(Image.open(io.BytesIO(jpeg)))
    # Zero padding hides nothing: it is recorded on the parent, not listed as an item.
    assert f"zero_padding:{len(jpeg)}:{padding}" in record["warnings"]
    assert summary["discovered"] == 1


# -- faces ---------------------------------------------------------------------------------------------

def test_face_on_page_2_of_a_tiff_is_found_by_face_search(tmp_path) -> None:
    astronaut = REPO / "sample_media" / "photos" / "astronaut.jpg"
    face_img = Image.open(astronaut).convert("RGB")
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    pages = [picture(100, face_img.size), picture(101, face_img.size), face_img]
    pages[0].save(evidence / "scan.tif", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    case = tmp_path / "case"
    summary = run_json("ingest", str(evidence), "--case", str(case), "--no-scenes", "--json")
    assert summary["status"] == "completed" and summary["faces"] >= 1
    result = run_json("search", "--case", str(case), "--query", str(astronaut), "--mode", "face", "--json")
    assert len(result["query"]["faces"]) == 1  # the face is detected in astronaut.jpg itself
    hits = [hit["media"]["path"] for hit in result["results"] if hit["above_threshold"]]
    assert hits == [f"{evidence / 'scan.tif'}!<page 2>"], result["results"]


def test_copies_chains_and_archive_members_each_derive_once(tmp_path) -> None:
    """Two copies of one TIFF: pages under the first path only (as archive members are). A JPEG +
    PNG + JPEG chain: the appended data's own appended data is found too. A TIFF inside a zip: its
    pages are items of the member."""
    import zipfile

    evidence = tmp_path / "evidence"
    evidence.mkdir()
    pages = [picture(200 + i) for i in range(3)]
    tif = io.BytesIO()
    pages[0].save(tif, "TIFF", save_all=True, append_images=pages[1:])
    for name in ("a_copy.tif", "b_copy.tif"):
        (evidence / name).write_bytes(tif.getvalue())
    first, second, third = encoded(picture(210), "JPEG"), encoded(picture(211), "PNG"), encoded(picture(212), "JPEG")
    (evidence / "chain.jpg").write_bytes(first + second + third)
    inner_pages, inner = [picture(220 + i) for i in range(3)], io.BytesIO()
    inner_pages[0].save(inner, "TIFF", save_all=True, append_images=inner_pages[1:])
    with zipfile.ZipFile(evidence / "box.zip", "w") as zf:
        zf.writestr("inner/scan.tif", inner.getvalue())
    summary = run_json("ingest", str(evidence), "--case", str(tmp_path / "case"), "--no-faces", "--no-scenes",
                       "--json")
    assert summary["status"] == "completed" and conservation_holds(summary)
    records = records_by_path(tmp_path / "case")
    assert f"{evidence / 'a_copy.tif'}!<page 2>" in records and not any("b_copy.tif!" in p for p in records)
    link = f"{evidence / 'chain.jpg'}!<appended data at byte {len(first)}>"
    assert records[link]["sha256"] == sha(second + third) and records[link]["mime"] == "image/png"
    last = records[f"{link}!<appended data at byte {len(second)}>"]
    assert last["status"] == "ok" and last["sha256"] == sha(third)
    member_page = records[f"{evidence / 'box.zip'}!inner/scan.tif!<page 2>"]
    assert member_page["status"] == "ok" and member_page["hashes"]["pdq"] == pdq_of(inner_pages[2])
