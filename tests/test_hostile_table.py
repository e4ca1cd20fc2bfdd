"""Issue 11's hostile kinds end where they may (tests/hostile_corpus_v2.py through the CLI), the
counts balance, and the table command (tools/hostile_table.py) really flags what does not.

The v2 corpus is generated here (never committed); one ingest of it takes about 15 s.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import hostile_corpus as hc
import hostile_corpus_v2 as hc2
import pytest
from conftest import REPO
from PIL import Image

if str(REPO) not in sys.path:  # tools/ is not an installed package
    sys.path.insert(0, str(REPO))
from tools import hostile_table as ht  # noqa: E402

# Kinds that end outside their expectation today, each with why. They stay visible: the test
# below that asserts them is a strict xfail, so fixing one makes the suite say "remove it here".
KNOWN_GAPS = {
    "archives/b.rar!x.jpg[#2]": "libarchive's RAR reader takes a header that repeats the previous "
                                "entry's name for a continuation of that entry: the second x.jpg has "
                                "no name and its bytes are never hashed",
    "archives/b.rar!": "the same member as the row above, as the pipeline records it (nameless, "
                       "skipped: unsafe_member_name)",
}


@pytest.fixture(scope="module")
def v2_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_v2") / "evidence"
    cases = hc2.build_hostile_corpus_v2(root)
    yield root, cases
    hc2.remove_hostile_corpus_v2(root)  # pytest's own clean-up would recurse 1,000 levels deep


@pytest.fixture(scope="module")
def v2_ingest(v2_corpus, tmp_path_factory):
    root, cases = v2_corpus
    case = tmp_path_factory.mktemp("hostile_v2_case") / "case"
    run = ht.ingest_and_read([str(root)], case, workers=2, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    return root, cases, run, ht.evaluate(root, cases, run.lines, run.csv_rows)


# ---------------------------------------------------------------------------------------------
# The generator: each artefact is what its kind says
# ---------------------------------------------------------------------------------------------
def test_v2_artefacts_are_what_they_claim(v2_corpus) -> None:
    from vidpipe.extract.hidden import exif_thumbnail_span, image_end

    root, cases = v2_corpus
    broot = os.fsencode(root)
    with zipfile.ZipFile(root / "identity/a.zip") as zf:
        names = [i.filename for i in zf.infolist()]
        assert names == ["x.jpg", "x.jpg"]
        first, second = (zf.open(i).read() for i in zf.infolist())
    sibling = (root / "identity/a.zip!x.jpg").read_bytes()
    assert len({first, second, sibling}) == 3
    with tarfile.open(root / "identity/b.tar") as tf:
        assert [m.name for m in tf.getmembers()] == ["y.jpg", "y.jpg"]
    # The deep tree and the long path, walked by descriptor (no path handed whole to the kernel).
    fd, depth = os.open(broot + b"/deep", os.O_RDONLY | os.O_DIRECTORY), 0
    while os.fsdecode(hc2.DEEP_DIR) in os.listdir(fd):  # listdir(fd) gives str names
        child = os.open(hc2.DEEP_DIR, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd, depth = child, depth + 1
    assert depth == hc2.DEEP_LEVELS and os.listdir(fd) == ["bottom.jpg"]
    os.close(fd)
    long_key = next(k for k in cases if k.startswith("long/"))
    assert len(os.fsencode(str(root) + "/" + long_key)) > 4096
    if any(k.startswith("names") for k in cases):
        assert b"names\xff\xfe" in os.listdir(broot)
        assert os.listdir(broot + b"/names\xff\xfe") == [b"caf\xe9.jpg"]
    # Multi-image files: 3 distinct frames each.
    for name in ("pages.tif", "anim.gif", "anim.png", "anim.webp"):
        with Image.open(root / "multi" / name) as im:
            assert getattr(im, "n_frames", 1) == hc2.PAGES, name
            frames = []
            for i in range(hc2.PAGES):
                im.seek(i)
                frames.append(im.convert("RGB").tobytes())
        assert len(set(frames)) == hc2.PAGES, name
    thumb_jpeg = (root / "hidden/exif_thumb.jpg").read_bytes()
    span = exif_thumbnail_span(thumb_jpeg)
    assert span is not None
    with Image.open(io.BytesIO(thumb_jpeg[span[0]:span[0] + span[1]])) as thumb:
        assert thumb.size == (80, 80)  # another picture, not a reduced copy (256 x 256)
    for rel in ("hidden/polyglot_jpeg_png.jpg", "hidden/polyglot_png_jpeg.png"):
        data = (root / rel).read_bytes()
        end = image_end(data)
        assert end is not None and end < len(data), rel
        assert f"{rel}!<appended data at byte {end}>" in cases
        with Image.open(io.BytesIO(data[end:])) as inner:
            inner.load()
    with pytest.raises(ValueError, match="MAX_TEXT_CHUNK"), Image.open(root / "hidden/ztxt_bomb.png") as im:
        im.load()  # Pillow's own limit: what the pipeline has to get past
    padded = os.stat(root / "hidden/zero_padded.jpg")
    assert padded.st_size > hc2.PADDING_BYTES > 512 * 1024**2 and padded.st_blocks * 512 < 1024**2  # sparse
    with pytest.raises((tarfile.ReadError, EOFError)), tarfile.open(root / "archives/cut.tar.gz") as tf:
        tf.getmembers()
    with zipfile.ZipFile(root / "archives/deflate64.zip") as zf:
        assert {i.compress_type for i in zf.infolist()} == {9}
    assert (root / "archives/a.7z").read_bytes()[:6] == b"7z\xbc\xaf\x27\x1c"
    assert (root / "archives/b.rar").read_bytes()[:7] == b"Rar!\x1a\x07\x00"
    assert hc2.CSV_FORMULA_MAKE.encode() in (root / "csv/hyperlink_make.jpg").read_bytes()
    assert "\u202egpj.exe" in os.listdir(root / "csv")
    assert (root / "video/short.mp4").stat().st_size > 1000


# ---------------------------------------------------------------------------------------------
# Through the CLI
# ---------------------------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_v2_ingest_completes_and_balances(v2_ingest) -> None:
    root, cases, run, _ = v2_ingest
    assert run.summary["status"] == "completed", run.summary
    holds, line = ht.conservation(run.summary)
    assert holds, line
    assert sum(len(x["paths"]) for x in run.lines) == run.summary["discovered"]
    required = sum(getattr(e, "count", 1) for e in cases.values() if e.required and not e.pattern)
    assert run.summary["discovered"] >= required


@pytest.mark.timeout(300)
def test_every_v2_kind_ends_in_an_acceptable_state(v2_ingest) -> None:
    _, _, _, rows = v2_ingest
    bad = [f"{r.key}: {r.observed} -- {'; '.join(r.problems)}" for r in rows
           if not r.ok and r.key not in KNOWN_GAPS]
    assert not bad, "\n".join(bad)
    derived = {r.key: r.derived for r in rows}
    assert derived["multi/pages.tif"] == "<page 1> ok, <page 2> ok"  # the table shows what was found


@pytest.mark.timeout(300)
@pytest.mark.xfail(strict=True, reason="known gaps, see KNOWN_GAPS")
def test_known_gaps_are_still_open(v2_ingest) -> None:
    _, _, _, rows = v2_ingest
    assert all(r.ok for r in rows if r.key in KNOWN_GAPS)


# ---------------------------------------------------------------------------------------------
# The table command can fail
# ---------------------------------------------------------------------------------------------
def _line(path: str, status: str = "ok", reason: str | None = None, **kw) -> dict:
    return {"paths": [path], "status": status, "reason": reason, "sha256": "a" * 64,
            "hashes": {"phash": "1", "pdq": "2"}, "mime": "image/jpeg", **kw}


def test_table_flags_every_way_a_case_can_be_outside_its_expectation(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    cases = {
        "good.jpg": hc2.expect_v2("fine", ok=True, hashed=True),
        "wrong.jpg": hc2.expect_v2("must be ok", ok=True),
        "missing.jpg": hc2.expect_v2("never exported", ok=True),
        "twice.jpg": hc2.expect_v2("two items read alike", ok=True, count=2),
        "make.jpg": hc2.expect_v2("formula make", ok=True, csv={"make": "'=*"}),
        "multi.tif": hc2.expect_v2("pages", ok=True),
        "multi.tif!<page 1>": hc2.expect_v2("page 1", ok=True),
    }
    lines = [_line(f"{root}/good.jpg"), _line(f"{root}/wrong.jpg", "failed", "decode_error"),
             _line(f"{root}/twice.jpg"), _line(f"{root}/make.jpg"), _line(f"{root}/multi.tif"),
             _line(f"{root}/multi.tif!<page 1>", "failed", "decode_error"), _line(f"{root}/multi.tif!<page 7>"),
             _line(f"{root}/invented.jpg"), _line("/elsewhere/x.jpg")]
    csv_rows = [{"path_b64": __import__("base64").b64encode(f"{root}/make.jpg".encode()).decode(),
                 "make": "=HYPERLINK(1)"}]
    rows = {r.key: r for r in ht.evaluate(root, cases, lines, csv_rows)}
    assert rows["good.jpg"].ok
    assert any("got failed(decode_error)" in p for p in rows["wrong.jpg"].problems)
    assert rows["missing.jpg"].problems and rows["missing.jpg"].observed == "MISSING"
    assert any("expected 2" in p for p in rows["twice.jpg"].problems)
    assert any(p.startswith("CSV make") for p in rows["make.jpg"].problems)
    assert "<page 1> failed(decode_error) (unexpected)" in rows["multi.tif"].derived
    assert "<page 7> ok (not predicted)" in rows["multi.tif"].derived and not rows["multi.tif"].ok
    assert not rows["invented.jpg"].ok and not rows["/elsewhere/x.jpg"].ok
    table = ht.render_table(list(rows.values()))
    assert table.count("**unexpected**") == 7


def test_table_shows_hostile_names_escaped_and_paths_compact() -> None:
    assert ht.compact_path("deep/" + "d/" * 1000 + "x.jpg") == "deep/(d/)×1000/x.jpg"
    assert ht.compact_path("long/" + "/".join("n" * 201 for _ in range(24)) + "/x.jpg") == \
        "long/(24 names of 201 B)/x.jpg"
    row = ht.Row("csv/\u202egpj.exe", "bidi | name", "ok(null)", "ok", "", [])
    table = ht.render_table([row])
    assert "\u202e" not in table and "\\u202egpj.exe" in table and "bidi \\| name" in table
    assert ht.compact_path(os.fsdecode(b"n/caf\xe9.jpg")) == "n/caf\\xe9.jpg"


def test_readme_section_is_replaced_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Hostile\n{ht.README_BEGIN}\nold table\n{ht.README_END}\n\n## Next\n")
    ht.update_readme(readme, "new table\n")
    text = readme.read_text()
    assert "old table" not in text and f"{ht.README_BEGIN}\nnew table\n{ht.README_END}" in text
    assert text.startswith("# x\n") and text.endswith("## Next\n")
    (tmp_path / "plain.md").write_text("no markers\n")
    with pytest.raises(SystemExit):
        ht.update_readme(tmp_path / "plain.md", "t")


def test_v1_keys_still_resolve_through_the_shared_helpers(tmp_path: Path) -> None:
    # The table reuses hostile_corpus's key mapping: an archive member and a pattern key.
    cases = {"a.zip!*.jpg": hc.expect("members", ok=True, pattern=True, required=False)}
    key = hc.relative_key(tmp_path, f"{tmp_path}/a.zip!p/q.jpg")
    assert key == "a.zip!p/q.jpg" and hc.find_expectation(cases, key) is cases["a.zip!*.jpg"]
