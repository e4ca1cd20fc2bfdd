"""Issue 11, items 5, 11, 12, 13: the case stays outside the evidence, private, never followed through
symlinks, fails cleanly when damaged, and exports CSV that is safe to open in a spreadsheet."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cli, run_json

PHOTOS = REPO / "sample_media" / "photos"
FAST = ("--no-faces", "--no-scenes", "--workers", "1", "--no-progress")


def _evidence(tmp: Path, names: tuple[str, ...] = ("astronaut.jpg", "coffee.jpg")) -> Path:
    ev = tmp / "evidence"
    ev.mkdir()
    for name in names:
        shutil.copy(PHOTOS / name, ev / name)
    return ev


def _ingest(evidence: Path, case: Path, **kw) -> subprocess.CompletedProcess:
    return run_cli("ingest", str(evidence), "--case", str(case), *FAST, "--json", **kw)


def _one_clean_error(proc: subprocess.CompletedProcess, code: int = 1, json_out: bool = False) -> str:
    """The contract for a failure: exit code, exactly one line on stderr, no traceback, and with
    --json exactly one ``{"error", "code"}`` object on stdout."""
    assert proc.returncode == code, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    if json_out:
        out = [line for line in proc.stdout.splitlines() if line.strip()]
        assert len(out) == 1, proc.stdout
        obj = json.loads(out[0])
        assert set(obj) == {"error", "code"} and obj["code"] == code and obj["error"] in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def tiny_case(tmp_path_factory) -> tuple[Path, Path]:
    """(evidence, case): two photos, no models; made once, copied by tests that damage it."""
    tmp = tmp_path_factory.mktemp("tiny")
    evidence = _evidence(tmp)
    case = tmp / "case"
    _ingest(evidence, case)
    return evidence, case


# ---- item 5: the case must not live inside the evidence; symlinks are refused, never followed ----

def test_case_inside_or_equal_to_evidence_is_refused_before_any_work(tmp_path: Path) -> None:
    evidence = _evidence(tmp_path)
    link = tmp_path / "evidence-link"
    link.symlink_to(evidence)
    before = sorted(os.listdir(evidence))
    for source, case in ((evidence, evidence / "case"), (evidence, evidence), (evidence, evidence / "a" / ".." / "b"),
                         (link, evidence / "case"), (evidence / "astronaut.jpg", evidence / "astronaut.jpg"),
                         (link, link / "case")):
        proc = run_cli("ingest", str(source), "--case", str(case), *FAST, "--json", check=False)
        assert "inside the evidence" in _one_clean_error(proc, code=2, json_out=True)
    assert sorted(os.listdir(evidence)) == before  # nothing was created inside the evidence


def test_symlinked_case_folder_and_entries_are_refused(tiny_case, tmp_path: Path) -> None:
    evidence, case = tiny_case
    link = tmp_path / "case-link"
    link.symlink_to(case)
    for args in (("report", "--case", str(link), "--json"), ("ingest", str(evidence), "--case", str(link), *FAST,
                                                              "--json")):
        assert "symlink" in _one_clean_error(run_cli(*args, check=False), json_out=True)
    assert "symlink" in _one_clean_error(run_cli("report", "--case", f"{link}/", check=False))
    # A symlink where indexes/ (or thumbs/, case.sqlite) should be: refused, its target untouched.
    for name in ("indexes", "thumbs", "case.sqlite"):
        copy = tmp_path / f"case-{name}"
        shutil.copytree(case, copy, symlinks=True)
        target = tmp_path / f"elsewhere-{name}"
        if name == "case.sqlite":
            os.replace(copy / name, target)
        else:
            shutil.rmtree(copy / name, ignore_errors=True)
            target.mkdir(mode=0o700)
        (copy / name).symlink_to(target)
        snapshot = sorted(os.listdir(target)) if target.is_dir() else target.read_bytes()
        for args in (("ingest", str(evidence), "--case", str(copy), *FAST, "--json"),
                     ("report", "--case", str(copy), "--json")):
            message = _one_clean_error(run_cli(*args, check=False), json_out=True)
            assert "symlink" in message and name in message
        assert (sorted(os.listdir(target)) if target.is_dir() else target.read_bytes()) == snapshot


# ---- item 11: case privacy ----

def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_case_is_private_and_a_readable_case_is_refused(tmp_path: Path) -> None:
    evidence = _evidence(tmp_path)
    case = tmp_path / "case"
    old = os.umask(0o022)  # the usual umask: vidpipe must not rely on the user's
    try:
        _ingest(evidence, case)
        out = tmp_path / "exports" / "all.csv"
        run_cli("export", "--case", str(case), "--format", "csv", "--out", str(out))
    finally:
        os.umask(old)
    assert _mode(case) == 0o700 and _mode(case / "case.sqlite") == 0o600
    assert _mode(case / "indexes") == 0o700
    index_files = list((case / "indexes").iterdir())
    assert index_files and all(_mode(p) == 0o600 for p in index_files)
    assert _mode(out) == 0o600
    # SQLite gives -wal/-shm the database's mode: they are private while a connection is open.
    import sqlite3

    conn = sqlite3.connect(case / "case.sqlite")
    conn.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
    assert _mode(case / "case.sqlite-wal") == 0o600 and _mode(case / "case.sqlite-shm") == 0o600
    conn.close()

    # Thumbnails the review UI makes (in a worker process) are private too: opening the case sets the umask.
    from ui.thumbs import ensure_thumbs, request_for_media
    from vidpipe.store.casedb import open_case

    old = os.umask(0o022)
    try:
        paths, db = open_case(case, create=False)
        sha = db.execute("SELECT sha256 FROM media LIMIT 1").fetchone()[0]
        thumbs = ensure_thumbs(paths.thumbs, [request_for_media(db, sha)])
        db.close()
    finally:
        os.umask(old)
    assert any(thumbs.values()) and _mode(case / "thumbs") == 0o700
    thumb_files = [p for p in (case / "thumbs").rglob("*") if p.is_file()]
    assert thumb_files and all(_mode(p) == 0o600 for p in thumb_files)

    for where in (case, case / "case.sqlite", index_files[0]):
        os.chmod(where, _mode(where) | 0o044)
        proc = run_cli("report", "--case", str(case), "--json", check=False)
        message = _one_clean_error(proc, json_out=True)
        assert f"chmod -R go-rwx {case}" in message
        subprocess.run(["chmod", "-R", "go-rwx", str(case)], check=True)  # the command the message gives
        run_json("report", "--case", str(case), "--json")


# ---- item 12: clean errors, never tracebacks ----

def _damage(db: Path, how: str) -> None:
    size = db.stat().st_size
    if how == "truncated":
        os.truncate(db, size // 2)
    elif how == "zeroed":
        db.write_bytes(bytes(size))
    elif how == "empty":
        os.truncate(db, 0)
    else:  # bit flips all over page 1 past the 100-byte header: the schema cannot be read
        data = bytearray(db.read_bytes())
        for i in range(200, 4096, 7):
            data[i] ^= 0xFF
        db.write_bytes(bytes(data))


def _commands(evidence: Path, case: Path, tmp: Path) -> list[tuple[str, ...]]:
    hashlist = tmp / "list.csv"
    hashlist.write_text("list,category,md5,sha1,sha256,pdq\nknown,1,,," + "ab" * 32 + ",\n")
    labels = tmp / "labels.csv"
    labels.write_text("file,identity\n" + "".join(f"{PHOTOS / n},{n}\n" for n in sorted(os.listdir(PHOTOS))))
    c = str(case)
    return [
        ("ingest", str(evidence), "--case", c, *FAST, "--json"),
        ("search", "--case", c, "--query", str(PHOTOS / "coffee.jpg"), "--mode", "near-dup", "--json"),
        ("export", "--case", c, "--format", "csv"),
        ("export", "--case", c, "--format", "jsonl", "--out", str(tmp / "out.jsonl")),
        ("report", "--case", c, "--json"),
        ("hashlist", "import", str(hashlist), "--case", c, "--json"),
        ("hashlist", "list", "--case", c, "--json"),
        ("faces", "cluster", "--case", c, "--json"),
        ("faces", "link", "--case", c, "--must", "1", "2", "--reviewer", "r"),
        ("calibrate", "faces", "--case", c, "--labels", str(labels), "--json"),
        ("retention", "remove", "--case", c, "--sha256", "ab" * 32, "--reason", "order", "--user", "u", "--json"),
        ("user", "list", "--case", c, "--json"),
        ("ui", "--case", c, "--dry-run"),
    ]


@pytest.mark.parametrize("how", ["truncated", "zeroed", "bit-flipped", "empty"])
def test_damaged_database_gives_one_line_errors_for_every_command(tiny_case, tmp_path: Path, how: str) -> None:
    evidence, case = tiny_case
    damaged = tmp_path / "case"
    shutil.copytree(case, damaged)
    _damage(damaged / "case.sqlite", how)
    before = (damaged / "case.sqlite").read_bytes()
    for args in _commands(evidence, damaged, tmp_path):
        proc = run_cli(*args, check=False)
        _one_clean_error(proc, json_out="--json" in args)
    proc = run_cli("verify", "--case", str(damaged), "--json", "--no-rehash", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] is False and result["reason"] and result["problems"]
    assert (damaged / "case.sqlite").read_bytes() == before  # never repaired or re-created over
    assert not (tmp_path / "out.jsonl").exists() and not list(tmp_path.glob(".out.jsonl.*"))


def test_case_path_is_a_file_and_export_out_is_a_folder(tiny_case, tmp_path: Path) -> None:
    evidence, case = tiny_case
    not_a_folder = tmp_path / "case.txt"
    not_a_folder.write_text("x")
    for args in (("ingest", str(evidence), "--case", str(not_a_folder), *FAST, "--json"),
                 ("report", "--case", str(not_a_folder), "--json"), ("user", "list", "--case", str(not_a_folder))):
        assert "not a folder" in _one_clean_error(run_cli(*args, check=False), json_out="--json" in args)
    assert not_a_folder.read_text() == "x"
    folder = tmp_path / "exports"
    folder.mkdir()
    proc = run_cli("export", "--case", str(case), "--format", "csv", "--out", str(folder), check=False)
    assert "is a folder" in _one_clean_error(proc)
    assert os.listdir(folder) == [] and not list(tmp_path.glob(".exports.*"))


def test_usage_error_with_json_is_one_json_object(tiny_case) -> None:
    proc = run_cli("report", "--case", str(tiny_case[1]), "--json", "--bogus", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout) == {"error": "unrecognized arguments: --bogus", "code": 2}


def _without_root_override(args: tuple[str, ...]) -> subprocess.CompletedProcess:
    """Run the CLI with file permissions enforced even for root (no CAP_DAC_OVERRIDE)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions cannot be enforced")
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
    return subprocess.run([*prefix, sys.executable, "-m", "vidpipe", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_read_only_case_folder(tiny_case, tmp_path: Path) -> None:
    evidence, case = tiny_case
    ro = tmp_path / "ro-case"
    shutil.copytree(case, ro)
    for p in [ro, *ro.rglob("*")]:
        os.chmod(p, 0o500 if p.is_dir() else 0o400)
    try:
        proc = _without_root_override(("ingest", str(evidence), "--case", str(ro), *FAST, "--json"))
        message = _one_clean_error(proc, json_out=True)
        assert "writable" in message or "Permission denied" in message
        # Reading a cleanly closed case needs no write access (SQLite reads it as immutable).
        proc = _without_root_override(("report", "--case", str(ro), "--json"))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["case"] == str(ro)
    finally:
        for p in [ro, *ro.rglob("*")]:
            os.chmod(p, 0o700 if p.is_dir() else 0o600)


def test_empty_database_is_never_recreated(tmp_path: Path) -> None:
    evidence = _evidence(tmp_path)
    case = tmp_path / "case"
    case.mkdir(mode=0o700)
    (case / "case.sqlite").touch(mode=0o600)
    proc = _ingest(evidence, case, check=False)
    assert "empty (0 bytes)" in _one_clean_error(proc, json_out=True)
    assert (case / "case.sqlite").stat().st_size == 0
    proc = run_cli("hashlist", "list", "--case", str(case), "--json", check=False)
    _one_clean_error(proc, json_out=True)


# ---- item 13: CSV exports are safe in a spreadsheet ----

def _jpeg_with_make(path: Path, make: str) -> None:
    from PIL import Image

    img = Image.open(PHOTOS / "coffee.jpg")
    exif = Image.Exif()
    exif[0x010F] = make   # Make
    img.save(path, "JPEG", exif=exif.tobytes())


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def test_csv_export_neutralises_formulas_and_controls_and_keeps_exact_paths(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    names = [b"=HYPERLINK(\"x\").jpg", b"+1.jpg", b"-2.jpg", b"@SUM(A1).jpg", b"\xff\xfe-not-utf8.jpg",
             "\u202ecod.jpg".encode(), b"tab\there.jpg"]
    for i, name in enumerate(names):
        src = PHOTOS / sorted(os.listdir(PHOTOS))[i % 4]
        with open(os.path.join(os.fsencode(evidence), name), "wb") as fh:
            fh.write(src.read_bytes() + bytes([i]))  # distinct content per name
    _jpeg_with_make(evidence / "exif.jpg", "=cmd|' /C calc'!A0")
    _ingest(evidence, tmp_path / "case")
    text = run_cli("export", "--case", str(tmp_path / "case"), "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        for key, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")) or _is_number(cell), (key, cell)
            assert not any(ch in cell for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
            assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in cell), (key, cell)
    raw = {base64.b64decode(row["path_b64"]) for row in rows}
    assert {os.path.join(os.fsencode(evidence), n) for n in names} <= raw  # byte-exact, non-UTF-8 included
    exif_row = next(r for r in rows if base64.b64decode(r["path_b64"]).endswith(b"exif.jpg"))
    assert exif_row["make"] == "'=cmd|' /C calc'!A0"
    tab = next(r for r in rows if base64.b64decode(r["path_b64"]).endswith(b"tab\there.jpg"))
    assert tab["paths"].endswith("tab\\x09here.jpg")
    rtl = next(r for r in rows if base64.b64decode(r["path_b64"]).endswith("\u202ecod.jpg".encode()))
    assert rtl["paths"].endswith("\\u202ecod.jpg")


def test_ui_decision_csv_is_neutralised() -> None:
    from ui.exports import CSV_COLUMNS, to_csv

    record = {"decision_id": 1, "decided_utc": "2024-01-01T00:00:00Z", "reviewer": "@bob", "decision": "match",
              "reason": "=1+1\u202e", "mode": "face", "score": -0.5, "threshold": 0.5,
              "query": {"sha256": "a" * 64, "path": "-q.jpg", "face": 0},
              "candidate": {"sha256": "b" * 64, "md5": None, "sha1": None, "size": 1, "mime": "image/jpeg",
                            "kind": "image", "paths": ["/e/x.jpg"], "face_id": None, "video_time_s": None}}
    row = next(csv.DictReader(io.StringIO(to_csv([record]))))
    assert set(row) == set(CSV_COLUMNS)
    assert row["reviewer"] == "'@bob" and row["reason"] == "'=1+1\\u202e" and row["query_path"] == "'-q.jpg"
    assert row["score"] == "-0.5"  # numbers stay numbers
