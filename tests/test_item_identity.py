"""Item identity is collision-proof: no path or archive member can hide another (issue 11, item 1)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import warnings
import zipfile

from conftest import export_records, run_json
from PIL import Image

from vidpipe.sources.base import ItemRef, Member


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 40), colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)  # zipfile warns on a repeated name and writes it anyway
    return buf.getvalue()


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_refs_round_trip_and_differ_where_locators_read_alike() -> None:
    sibling = ItemRef(b"/e/a.zip!x.jpg")
    member = ItemRef(b"/e/a.zip").child(Member(b"x.jpg"))
    again = ItemRef(b"/e/a.zip").child(Member(b"x.jpg", index=1))
    assert sibling.legacy_locator_bytes == member.legacy_locator_bytes  # the old key collided
    assert len({sibling.identity_bytes, member.identity_bytes, again.identity_bytes}) == 3
    for ref in (sibling, member, again, ItemRef(b"/e/p.gif").child(Member(b"", "page", 3))):
        assert ItemRef.from_blob(ref.to_blob()) == ref
    # A ref stored before typed members (plain names) still reads as the same member.
    assert ItemRef.from_blob(b"/e/a.zip\x00x.jpg") == member


def test_sibling_named_like_a_member_and_repeated_member_names_all_count(tmp_path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    red, green, blue, white = _jpeg((200, 0, 0)), _jpeg((0, 200, 0)), _jpeg((0, 0, 200)), _jpeg((250, 250, 250))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" from zipfile: the point of the test
        (evidence / "a.zip").write_bytes(_zip([("x.jpg", red), ("x.jpg", green)]))
    (evidence / "a.zip!x.jpg").write_bytes(blue)
    (evidence / "b.tar").write_bytes(_tar([("y.jpg", white), ("y.jpg", red)]))
    summary = run_json("ingest", str(evidence), "--case", str(tmp_path / "case"), "--no-faces", "--no-scenes",
                       "--json")
    # 3 files on disk + 2 zip members + 2 tar members
    assert summary["discovered"] == 7, summary
    assert summary["ok"] == 6 and summary["skipped"] == {"duplicate_content": 1}, summary  # red twice
    records = export_records(tmp_path / "case")
    by_sha = {r["sha256"]: r for r in records}
    for data in (red, green, blue, white):
        assert hashlib.sha256(data).hexdigest() in by_sha
    paths = sorted(p for r in records for p in r["paths"])
    assert sum(p.endswith("a.zip!x.jpg") for p in paths) == 2  # the sibling file and the first member
    assert any(p.endswith("a.zip!x.jpg[#2]") for p in paths)
    assert any(p.endswith("b.tar!y.jpg[#2]") for p in paths)
    # Re-running does no new work and adds no rows.
    again = run_json("ingest", str(evidence), "--case", str(tmp_path / "case"), "--no-faces", "--no-scenes",
                     "--json")
    assert again["discovered"] == 7 and again["ok"] == 6
