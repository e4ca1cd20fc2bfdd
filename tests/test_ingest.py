"""End-to-end ingest through the CLI contract on sample_media/ (a copy, so it stays pristine)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import conservation_holds, export_records, run_cli, run_json


def fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    """SHA-256 and mtime (ns) of every regular file, without following links."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            st = path.lstat()
            if path.is_symlink() or not path.is_file():
                continue
            out[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[Path, Path, dict, dict[str, tuple[str, int]]]:
    root = Path(__file__).resolve().parent.parent / "sample_media"
    evidence = tmp_path_factory.mktemp("evidence") / "sample_media"
    shutil.copytree(root, evidence)
    case = tmp_path_factory.mktemp("case")
    before = fingerprint(evidence)
    summary = run_json("ingest", str(evidence), "--case", str(case), "--no-faces", "--no-scenes", "--json")
    return evidence, case, summary, before


def by_path(records: list[dict], suffix: str) -> dict:
    hits = [r for r in records if any(p.endswith(suffix) for p in r["paths"])]
    assert len(hits) == 1, f"{suffix}: {len(hits)} records"
    return hits[0]


def test_summary_follows_the_contract(ingested) -> None:
    _, _, summary, _ = ingested
    assert summary["status"] == "completed"
    assert conservation_holds(summary)
    for key in ("run_id", "discovered", "ok", "partial", "failed", "skipped", "images", "videos", "frames",
                "faces", "elapsed_s"):
        assert key in summary
    assert summary["skipped"]["duplicate_content"] == 1
    assert summary["failed"] == {"empty_file": 1, "format_not_allowed": 1}
    assert summary["partial"] == 1 and summary["partial_reasons"] == {"truncated": 1}
    assert summary["videos"] == 2


def test_evidence_is_untouched(ingested) -> None:
    evidence, _, _, before = ingested
    assert fingerprint(evidence) == before


def test_records(ingested) -> None:
    evidence, case, _, _ = ingested
    records = export_records(case)
    expected = json.loads((evidence / "EXPECTED.json").read_text())
    for rel, exif in expected["exif"].items():
        got = by_path(records, rel)["exif"]
        for key in ("make", "model", "serial", "datetime_original", "offset_time"):
            assert got[key] == exif[key], (rel, key)
        if exif["gps"] is None:
            assert got["gps"] is None
        else:
            for k in ("lat", "lon"):
                assert got["gps"][k] == pytest.approx(exif["gps"][k], abs=1e-6)
            assert (got["gps"]["alt"] is None) == (exif["gps"]["alt"] is None)
    dup = by_path(records, "near_dups/rocket.jpg")
    assert len(dup["paths"]) == 2 and all(os.path.isabs(p) for p in dup["paths"])
    for key, length in (("md5", 32), ("sha1", 40), ("sha256", 64)):
        assert len(dup[key]) == length
    assert len(dup["hashes"]["pdq"]) == 64 and dup["hashes"]["pdq_quality"] == 100
    assert by_path(records, "misc/truncated.jpg")["status"] == "partial"
    assert by_path(records, "misc/fake.jpg")["reason"] == "format_not_allowed"
    member = by_path(records, "misc/archive.zip!trip/day2/room_b_3.jpg")
    assert member["status"] == "ok" and member["hashes"]["phash"]
    video = by_path(records, "video/clip.mp4")
    assert video["kind"] == "video" and video["video"]["duration_s"] == pytest.approx(6.0, abs=0.1)


def test_rerun_does_no_new_work_and_exports_identically(ingested) -> None:
    evidence, case, first, _ = ingested
    export_before = run_cli("export", "--case", str(case), "--format", "jsonl").stdout
    second = run_json("ingest", str(evidence), "--case", str(case), "--no-faces", "--no-scenes", "--json")
    assert second["run_id"] != first["run_id"]
    for key in ("discovered", "ok", "partial", "failed", "skipped", "images", "videos"):
        assert second[key] == first[key]
    assert run_cli("export", "--case", str(case), "--format", "jsonl").stdout == export_before
    import sqlite3

    conn = sqlite3.connect(case / "case.sqlite")
    done_in_second = conn.execute("SELECT COUNT(*) FROM media WHERE done_run=?", (second["run_id"],)).fetchone()[0]
    assert done_in_second == 0


def test_verify_passes_then_detects_changed_evidence(ingested, tmp_path) -> None:
    evidence, case, _, _ = ingested
    result = json.loads(run_cli("verify", "--case", str(case), "--json").stdout)
    assert result["ok"] and result["checks"]["evidence_hashes"]["checked"] >= 25
    # Work on a copy of the case so the module's other tests keep their pristine evidence.
    copy_evidence = tmp_path / "ev"
    shutil.copytree(evidence, copy_evidence)
    copy_case = tmp_path / "case"
    run_json("ingest", str(copy_evidence), "--case", str(copy_case), "--no-faces", "--json")
    target = copy_evidence / "photos" / "chelsea.jpg"
    target.write_bytes(target.read_bytes() + b"tampered")
    proc = run_cli("verify", "--case", str(copy_case), "--json", check=False)
    assert proc.returncode == 1
    checks = json.loads(proc.stdout)["checks"]
    assert checks["evidence_hashes"]["mismatched"] == [str(target)]


def test_csv_export_and_report(ingested, tmp_path) -> None:
    _, case, summary, _ = ingested
    out = tmp_path / "out.csv"
    run_cli("export", "--case", str(case), "--format", "csv", "--out", str(out))
    import csv

    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(export_records(case))
    report = run_json("report", "--case", str(case), "--json")
    assert report["items"] == summary["discovered"]
    assert report["runs"][0]["libraries"]["Pillow"]


def test_usage_and_missing_case_exit_codes(tmp_path) -> None:
    assert run_cli("ingest", "--case", str(tmp_path), check=False).returncode == 2
    assert run_cli("report", "--case", str(tmp_path / "nope"), check=False).returncode == 2
    assert run_cli("ingest", str(tmp_path / "missing"), "--case", str(tmp_path / "c"), check=False).returncode == 2


def test_vics_export_lists_every_content_with_hashes(ingested) -> None:
    _, case, _, _ = ingested
    doc = json.loads(run_cli("export", "--case", str(case), "--format", "vics").stdout)
    media = doc["value"][0]["Media"]
    records = [r for r in export_records(case) if r["sha256"]]
    assert len(media) == len(records)
    by_sha = {m["SHA256"]: m for m in media}
    for r in records:
        assert by_sha[r["sha256"]]["MD5"] == r["md5"].upper()
        assert by_sha[r["sha256"]]["Category"] is None  # vidpipe never categorises
