"""Evidence roots and paths that must neither vanish nor abort a run (issue 11, items 2 and 4).

A root given through a link is walked at its target (links inside stay ``skipped: symlink``); a
1,000-level tree, names that are not UTF-8 (inside the tree and as the root itself) and a file
whose absolute path is longer than PATH_MAX each end as ordinary records of a completed run.
Trees are built with ``dir_fd`` steps, so no path here is ever handed whole to the kernel.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import conservation_holds, export_records, run_json
from PIL import Image

from vidpipe.sources import folder
from vidpipe.sources.folder import FolderSource
from vidpipe.sources.opener import open_file_readonly

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY


def jpeg(seed: int) -> bytes:
    """A tiny JPEG whose bytes differ per seed (distinct content, so no duplicate_content)."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (seed * 37 % 256, 90, 200 - seed % 100)).save(out, "JPEG")
    return out.getvalue()


def ingest(*sources: str | bytes, case: Path) -> dict:
    args = [os.fsdecode(s) for s in sources]
    summary = run_json("ingest", *args, "--case", str(case), "--no-faces", "--no-scenes", "--workers", "1",
                       "--json", timeout=300)
    assert summary["status"] == "completed", summary
    assert conservation_holds(summary), summary
    return summary


def make_chain(base: bytes, names: Iterator[bytes], leaf: bytes, content: bytes) -> None:
    """mkdir each name inside the previous one (through descriptors), then write ``leaf`` at the bottom."""
    fd = os.open(base, DIR_FLAGS)
    try:
        for name in names:
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        out = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
        os.write(out, content)
        os.close(out)
    finally:
        os.close(fd)


def remove_chain(base: bytes, name: bytes, depth: int) -> None:
    """Delete a chain of ``depth`` directories called ``name`` bottom up, without recursion.

    shutil.rmtree recurses once per level, so pytest's clean-up of old temp dirs would hit
    RecursionError on the 1,000-level tree in every later session on this machine."""
    fd = os.open(base, DIR_FLAGS)
    for _ in range(depth):
        child = os.open(name, DIR_FLAGS, dir_fd=fd)
        os.close(fd)
        fd = child
    for leaf in os.listdir(fd):
        os.unlink(leaf, dir_fd=fd)
    for _ in range(depth):
        parent = os.open(b"..", DIR_FLAGS, dir_fd=fd)
        os.close(fd)
        fd = parent
        os.rmdir(name, dir_fd=fd)
    os.close(fd)


def by_sha(records: list[dict]) -> dict[str, dict]:
    return {r["sha256"]: r for r in records if r.get("sha256")}


# ---------------------------------------------------------------------------------------------
# Item 2: a symlinked evidence root
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "trailing-slash"])
def test_symlinked_root_is_walked_at_its_target(tmp_path, slash):
    evidence = tmp_path / "evidence"
    (evidence / "sub").mkdir(parents=True)
    (evidence / "a.jpg").write_bytes(jpeg(1))
    (evidence / "sub" / "b.jpg").write_bytes(jpeg(2))
    (evidence / "inner.jpg").symlink_to("a.jpg")
    link = tmp_path / "link-to-folder"
    link.symlink_to(evidence)
    case = tmp_path / "case"
    summary = ingest(str(link) + slash, case=case)
    assert summary["discovered"] == 3 and summary["ok"] == 2, summary
    assert summary["skipped"] == {"symlink": 1}, summary
    assert summary["sources"] == [{"path": str(evidence), "given": str(link)}]
    records = export_records(case)
    paths = sorted(p for r in records for p in r["paths"])
    assert paths == [str(evidence / "a.jpg"), str(evidence / "inner.jpg"), str(evidence / "sub" / "b.jpg")]
    inner = next(r for r in records if r["paths"] == [str(evidence / "inner.jpg")])
    assert (inner["status"], inner["reason"], inner["sha256"]) == ("skipped", "symlink", None)
    with sqlite3.connect(case / "case.sqlite") as conn:
        rows = conn.execute("SELECT root, root_bytes, given_root, given_root_bytes FROM sources").fetchall()
    assert rows == [(str(evidence), os.fsencode(evidence), str(link), os.fsencode(link))]
    again = ingest(str(link) + slash, case=case)  # the same command again: nothing new, one source
    assert again["discovered"] == 3 and again["ok"] == 2


def test_root_that_links_to_a_file(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(jpeg(3))
    link = tmp_path / "link.jpg"
    link.symlink_to(tmp_path / "photo.jpg")
    case = tmp_path / "case"
    summary = ingest(str(link), case=case)
    assert (summary["discovered"], summary["ok"]) == (1, 1), summary
    [record] = export_records(case)
    assert record["paths"] == [str(tmp_path / "photo.jpg")]
    assert record["sha256"] == hashlib.sha256(jpeg(3)).hexdigest()


# ---------------------------------------------------------------------------------------------
# Item 4: one bad path costs at most one record
# ---------------------------------------------------------------------------------------------
def test_thousand_level_tree_is_walked_to_the_bottom(tmp_path):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "top.jpg").write_bytes(jpeg(4))
    make_chain(os.fsencode(evidence), (b"d" for _ in range(1000)), b"bottom.jpg", jpeg(5))
    case = tmp_path / "case"
    try:
        summary = ingest(str(evidence), case=case)
    finally:
        remove_chain(os.fsencode(evidence), b"d", 1000)
    assert (summary["discovered"], summary["ok"]) == (2, 2), summary
    bottom = by_sha(export_records(case))[hashlib.sha256(jpeg(5)).hexdigest()]
    assert bottom["status"] == "ok" and bottom["kind"] == "image", bottom
    assert bottom["paths"] == [str(evidence) + "/d" * 1000 + "/bottom.jpg"]


def test_non_utf8_root_and_names(tmp_path):
    root = os.fsencode(tmp_path) + b"/ev\xff\xfe"
    try:
        os.mkdir(root)
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    make_chain(root, iter([b"dir\xff\xfe"]), b"p\xff\xfe.jpg", jpeg(6))
    with open(root + b"/plain.jpg", "wb") as fh:
        fh.write(jpeg(7))
    case = tmp_path / "case"
    summary = ingest(root, case=case)
    assert (summary["discovered"], summary["ok"]) == (2, 2), summary
    escaped = str(tmp_path) + "/ev\\xff\\xfe"
    assert summary["sources"] == [{"path": escaped, "given": escaped}]
    record = by_sha(export_records(case))[hashlib.sha256(jpeg(6)).hexdigest()]
    assert record["status"] == "ok", record
    assert record["paths"] == [escaped + "/dir\\xff\\xfe/p\\xff\\xfe.jpg"]
    raw = root + b"/dir\xff\xfe/p\xff\xfe.jpg"
    assert base64.b64decode(record["paths_b64"][0]) == raw  # the exact bytes stay recoverable
    with sqlite3.connect(case / "case.sqlite") as conn:
        assert conn.execute("SELECT root, root_bytes FROM sources").fetchall() == [(escaped, root)]


def test_file_under_a_path_longer_than_path_max_is_hashed(tmp_path):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    names = [b"%02d" % i + b"x" * 198 for i in range(24)]  # 24 x 201 bytes: well past 4,096
    make_chain(os.fsencode(evidence), iter(names), b"deep.jpg", jpeg(8))
    case = tmp_path / "case"
    summary = ingest(str(evidence), case=case)
    assert (summary["discovered"], summary["ok"]) == (1, 1), summary
    [record] = export_records(case)
    assert len(os.fsencode(record["paths"][0])) > 4096
    assert record["status"] == "ok" and record["sha256"] == hashlib.sha256(jpeg(8)).hexdigest(), record


# ---------------------------------------------------------------------------------------------
# The walker and the opener, directly
# ---------------------------------------------------------------------------------------------
def _expected_order(root: bytes) -> list[bytes]:
    """Depth first, each directory's entries by name bytes: what the walker has always yielded."""
    out = []
    for name in sorted(os.listdir(root)):
        path = root + b"/" + name
        if os.path.isdir(path) and not os.path.islink(path):
            out += _expected_order(path)
        else:
            out.append(path)
    return out


def test_walk_order_with_few_open_descriptors(tmp_path, monkeypatch):
    """Ancestors closed for the descriptor cap are re-opened and the order stays the same."""
    root = os.fsencode(tmp_path / "tree")
    os.mkdir(root)
    seed = 0
    # a/ with two deep branches and a file after them, so a closed ancestor still has work left
    for branch in (b"a/x", b"a/y", b"b"):
        d = root
        for part in branch.split(b"/"):
            d += b"/" + part
            os.makedirs(d, exist_ok=True)
        for depth in range(6):
            d += b"/n%d" % depth
            os.mkdir(d)
            with open(d + b"/f.jpg", "wb") as fh:
                seed += 1
                fh.write(jpeg(seed))
    with open(root + b"/a/m.jpg", "wb") as fh:
        fh.write(jpeg(99))
    os.symlink(b"a", root + b"/link")
    expected = _expected_order(root)
    monkeypatch.setattr(folder, "MAX_OPEN_DIRS", 2)
    got = [e.ref.fs_path for e in FolderSource(root).discover()]
    assert got == expected
    kinds = {e.ref.fs_path: e.preset for e in FolderSource(root).discover()}
    assert kinds[root + b"/link"] == ("skipped", "symlink")


def test_opener_refuses_a_directory_swapped_for_a_link(tmp_path):
    (tmp_path / "evidence" / "d").mkdir(parents=True)
    (tmp_path / "evidence" / "d" / "x.jpg").write_bytes(jpeg(10))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.jpg").write_bytes(b"not evidence")
    path = os.fsencode(tmp_path / "evidence" / "d" / "x.jpg")
    with open_file_readonly(path) as fh:
        assert fh.read() == jpeg(10)
    (tmp_path / "evidence" / "d").rename(tmp_path / "evidence" / "moved")
    (tmp_path / "evidence" / "d").symlink_to(tmp_path / "outside")
    with pytest.raises(OSError):
        open_file_readonly(path)
