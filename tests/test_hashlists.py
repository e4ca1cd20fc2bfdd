"""Known-hash lists: import (CSV, Project VIC JSON), idempotence, negative lists, PDQ matching, export."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, export_records, run_cli, run_json
from PIL import Image

from vidpipe.extract.hashers import PDQ_MATCH_DISTANCE, PDQHasher
from vidpipe.hashlists.match import pdq_pairs
from vidpipe.reporting.export import iter_records

SAMPLE = REPO / "sample_media"
HEADER = "list,category,md5,sha1,sha256,pdq\n"


def _digest(name: str, algo: str) -> str:
    return hashlib.new(algo, (SAMPLE / name).read_bytes()).hexdigest()


def _reencoded_pdq(name: str) -> str:
    """PDQ of a JPEG quality-40 re-encode: a near-duplicate with other bytes than the evidence."""
    buf = io.BytesIO()
    Image.open(SAMPLE / name).convert("RGB").save(buf, "JPEG", quality=40)
    value = PDQHasher().compute(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert value.quality >= 50
    return value.hex


@pytest.fixture(scope="module")
def base_case(tmp_path_factory) -> Path:
    case = tmp_path_factory.mktemp("hl") / "case"
    summary = run_json("ingest", str(SAMPLE / "photos"), str(SAMPLE / "rooms"), "--case", str(case),
                       "--no-faces", "--no-scenes", "--json")
    assert summary["ok"] == 9
    return case


@pytest.fixture
def case(base_case: Path, tmp_path: Path) -> Path:
    """A private copy of the ingested case (imports change it)."""
    return Path(shutil.copytree(base_case, tmp_path / "case"))


def _hits(case: Path) -> dict[str, list[dict]]:
    """{file name: hashlist_hits} for every content record."""
    return {Path(r["paths"][0]).name: r["hashlist_hits"] for r in export_records(case) if r["sha256"]}


def _flagged(case: Path) -> dict[str, list[dict]]:
    return {name: hits for name, hits in _hits(case).items() if hits}


def _db_counts(case: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(case / "case.sqlite")
    try:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                     for t in ("hashlists", "hashlist_entries", "hashlist_hits"))
    finally:
        conn.close()


def _positive_csv(path: Path) -> Path:
    coffee_md5 = _digest("photos/coffee.jpg", "md5")
    rows = [
        f"known,A1,{coffee_md5},,,",
        f"known,B2,,,,{_reencoded_pdq('photos/chelsea.jpg')}",
        f"known,A1,{coffee_md5[:-1]},,,",            # md5 one digit short
        f"known,A1,,,,{'g' * 64}",                   # pdq not hex
        "known,A1,,,,",                              # no hash at all
        f"known,A1,{coffee_md5},,,,extra",           # one cell too many
    ]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def test_csv_list_flags_exactly_md5_and_pdq_and_reimport_is_idempotent(case: Path, tmp_path: Path) -> None:
    listfile = _positive_csv(tmp_path / "known.csv")
    first = run_json("hashlist", "import", str(listfile), "--case", str(case), "--json")
    assert first["imported"] == 2 and first["rows"] == 6 and first["bad_rows"] == 4
    assert first["bad_reasons"] == {"bad_md5": 1, "bad_pdq": 1, "column_count": 1, "no_hash": 1}
    assert [b["where"] for b in first["bad_examples"]] == ["line 4", "line 5", "line 6", "line 7"]
    assert first["lists"][0]["entries"] == 2 and not first["lists"][0]["already_imported"]
    assert first["match"]["flagged_media"] == 2

    flagged = _flagged(case)
    assert set(flagged) == {"coffee.jpg", "chelsea.jpg"}
    assert flagged["coffee.jpg"] == [{"list": "known", "category": "A1", "match": "md5", "distance": 0,
                                      "category_label": None}]
    (pdq_hit,) = flagged["chelsea.jpg"]
    assert pdq_hit["match"] == "pdq" and pdq_hit["category"] == "B2"
    assert 0 <= pdq_hit["distance"] <= PDQ_MATCH_DISTANCE
    counts = _db_counts(case)
    assert counts == (1, 2, 2)

    again = run_json("hashlist", "import", str(listfile), "--case", str(case), "--json")
    assert again["imported"] == 0 and again["lists"][0]["already_imported"]
    assert again["lists"][0]["entries"] == 2 and again["bad_rows"] == 4
    assert _db_counts(case) == counts
    assert _flagged(case) == flagged

    rows = list(csv.DictReader(io.StringIO(run_cli("export", "--case", str(case), "--format", "csv").stdout)))
    by_name = {Path(r["paths"]).name: int(r["hashlist_hits"]) for r in rows}
    assert by_name["coffee.jpg"] == 1 and by_name["chelsea.jpg"] == 1 and sum(by_name.values()) == 2

    listed = run_json("hashlist", "list", "--case", str(case), "--json")["lists"]
    assert [(x["name"], x["entries"], x["hits"], x["negative"]) for x in listed] == [("known", 2, 2, False)]


def test_negative_list_suppresses_the_hit_on_the_same_hash(case: Path, tmp_path: Path) -> None:
    run_json("hashlist", "import", str(_positive_csv(tmp_path / "known.csv")), "--case", str(case), "--json")
    negative = tmp_path / "benign.csv"
    negative.write_text(HEADER + f"benign,,{_digest('photos/coffee.jpg', 'md5')},,,\n")
    result = run_json("hashlist", "import", str(negative), "--case", str(case), "--negative", "--json")
    assert result["lists"][0]["negative"] is True
    assert result["match"]["suppressed"] == 1 and result["match"]["negative_hits"] == 1
    assert set(_flagged(case)) == {"chelsea.jpg"}

    # A perceptual false positive: a negative PDQ (same re-encode) suppresses the PDQ hit.
    benign_pdq = tmp_path / "benign_pdq.csv"
    benign_pdq.write_text(HEADER + f"benign,,,,,{_reencoded_pdq('photos/chelsea.jpg')}\n")
    result = run_json("hashlist", "import", str(benign_pdq), "--case", str(case), "--negative", "--json")
    assert result["match"]["suppressed"] == 2 and result["match"]["flagged_media"] == 0
    assert _flagged(case) == {}

    # One name cannot be both a list of known material and a list of known false positives.
    negative.write_text(HEADER + f"known,,{_digest('photos/coffee.jpg', 'md5')},,,\n")
    clash = run_cli("hashlist", "import", str(negative), "--case", str(case), "--negative", check=False)
    assert clash.returncode == 2 and "known" in clash.stderr
    assert _db_counts(case)[0] == 3   # nothing of the refused import was kept


def test_project_vic_json_both_shapes_with_category_map(case: Path, tmp_path: Path) -> None:
    nested = tmp_path / "vic_nested.json"
    nested.write_text(json.dumps({"odata.metadata": "x", "value": [{"CaseID": "c", "Media": [
        {"MediaID": 1, "Category": 1, "MD5": "", "SHA1": _digest("rooms/room_a_1.jpg", "sha1").upper()},
        {"MediaID": 2, "Category": 2, "SHA1": "1234"},                    # malformed SHA-1
        "not a record",
    ]}]}))
    cmap = tmp_path / "codes.csv"
    cmap.write_text("code,label\n1,label one (test)\n2,label two (test)\n")
    result = run_json("hashlist", "import", str(nested), "--case", str(case), "--name", "vic",
                      "--categories", str(cmap), "--json")
    assert result["imported"] == 1 and result["bad_reasons"] == {"bad_sha1": 1, "not_a_record": 1}
    assert result["bad_examples"][0]["where"] == "value[0].Media[1]"

    direct = tmp_path / "vic_direct.json"
    direct.write_text(json.dumps({"value": [{"category": "7", "sha256": _digest("photos/astronaut.jpg", "sha256"),
                                             "pdq": None}]}))
    run_json("hashlist", "import", str(direct), "--case", str(case), "--json")   # list named after the file

    flagged = _flagged(case)
    assert flagged == {
        "room_a_1.jpg": [{"list": "vic", "category": "1", "match": "sha1", "distance": 0,
                          "category_label": "label one (test)"}],
        "astronaut.jpg": [{"list": "vic_direct", "category": "7", "match": "sha256", "distance": 0,
                           "category_label": None}],
    }


def test_large_random_list_imports_and_matches_in_seconds(case: Path, tmp_path: Path) -> None:
    n = 100_000
    rng = np.random.default_rng(7)
    md5s, pdqs = rng.bytes(16 * n).hex(), rng.bytes(32 * n).hex()
    listfile = tmp_path / "big.csv"
    with listfile.open("w") as fh:
        fh.write(HEADER)
        fh.write(f"big,Z,,,{_digest('photos/hubble_deep_field.jpg', 'sha256')},\n")
        fh.writelines(f"big,{i % 5},{md5s[32 * i:32 * i + 32]},,,{pdqs[64 * i:64 * i + 64]}\n" for i in range(n))
    started = time.perf_counter()
    result = run_json("hashlist", "import", str(listfile), "--case", str(case), "--json")
    elapsed = time.perf_counter() - started
    print(f"\n100k-entry list: CLI import + match {elapsed:.2f} s (match {result['match']['elapsed_s']:.3f} s, "
          f"{result['match']['pdq_method']})")
    assert result["imported"] == n + 1 and result["bad_rows"] == 0
    assert result["match"]["list_pdq_distinct"] == n
    assert elapsed < 60 and result["match"]["elapsed_s"] < 10
    assert _flagged(case) == {"hubble_deep_field.jpg": [
        {"list": "big", "category": "Z", "match": "sha256", "distance": 0, "category_label": None}]}


def _planted(m: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, set[tuple[int, int, int]]]:
    """Random codes plus queries planted at distances 0..40 from some refs."""
    rng = np.random.default_rng(seed)
    queries = rng.integers(0, 256, (m, 32), dtype=np.uint8)
    refs = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    for i in range(41):
        bits = np.unpackbits(refs[i * 3])
        bits[rng.choice(256, size=i, replace=False)] ^= 1
        queries[i] = np.packbits(bits)
    return queries, refs, {(i, i * 3, i) for i in range(PDQ_MATCH_DISTANCE + 1)}


@pytest.mark.parametrize("method", ["numpy", "mih", "faiss-binary-flat"])
def test_pdq_pair_search_is_exact_at_the_threshold(method: str) -> None:
    queries, refs, expected = _planted(300, 20_000, seed=3)
    qi, ri, d, used = pdq_pairs(queries, refs, method=method)
    assert used == method
    assert set(zip(qi.tolist(), ri.tolist(), d.tolist())) == expected   # 31 in, 32 out
    # Skewed codes (one chunk shared by every code) make multi-index hashing fall back to a scan.
    queries[:, :2] = 0
    refs[:, :2] = 0
    skew = pdq_pairs(queries, refs, method=method)
    reference = pdq_pairs(queries, refs, method="faiss-binary-flat")
    assert all((a == b).all() for a, b in zip(skew[:3], reference[:3]))


def test_mih_speed_10k_media_by_100k_list() -> None:
    queries, refs, expected = _planted(10_000, 100_000, seed=5)
    started = time.perf_counter()
    qi, ri, d, used = pdq_pairs(queries, refs)
    elapsed = time.perf_counter() - started
    print(f"\nPDQ pair search 10k x 100k: {elapsed:.2f} s ({used})")
    assert used == "mih" and expected <= set(zip(qi.tolist(), ri.tolist(), d.tolist()))
    assert elapsed < 10


def test_export_of_a_case_without_hashlist_tables() -> None:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.executescript("CREATE TABLE items (sha256, locator, locator_bytes, ext_mismatch, status, reason, fs_kind, "
                       "detail); CREATE TABLE signals (sha256, signal, value, quality); CREATE TABLE media (sha256);")
    assert list(iter_records(conn)) == []


def test_pdq_negative_keeps_exact_hits_and_matching_is_idempotent(case: Path) -> None:
    from vidpipe.hashlists.match import match_case
    from vidpipe.hashlists.parse import ListEntry
    from vidpipe.hashlists.store import import_rows
    from vidpipe.store.casedb import open_case

    _, conn = open_case(case, create=False)
    coffee_md5 = _digest("photos/coffee.jpg", "md5")
    (coffee_pdq,) = conn.execute("SELECT s.value FROM signals s JOIN media m ON m.sha256 = s.sha256 "
                                 "WHERE m.md5 = ? AND s.signal = 'pdq'", (coffee_md5,)).fetchone()
    import_rows(conn, [ListEntry("pos", "c", md5=coffee_md5), ListEntry("pos", "c", pdq=coffee_pdq)],
                source_path=Path("pos"), source_sha256="1" * 64, negative=False)
    import_rows(conn, [ListEntry("neg", None, pdq=coffee_pdq)], source_path=Path("neg"), source_sha256="2" * 64,
                negative=True)
    summary = match_case(conn)
    assert summary["hits"] == {"md5": 1, "sha1": 0, "sha256": 0, "pdq": 0}
    assert summary["suppressed"] == 1 and summary["negative_hits"] == 1
    table = conn.execute("SELECT * FROM hashlist_hits ORDER BY sha256, list_id, match").fetchall()
    assert [(r["match"], r["distance"], r["suppressed"]) for r in table] == [("md5", 0, 0), ("pdq", 0, 1), ("pdq", 0, 0)]
    assert match_case(conn)["hits"] == summary["hits"]
    assert [tuple(r) for r in conn.execute("SELECT * FROM hashlist_hits ORDER BY sha256, list_id, match")] == \
        [tuple(r) for r in table]
    conn.close()


def test_a_file_that_is_no_hash_list_is_a_usage_error_and_creates_no_case(tmp_path: Path) -> None:
    not_a_list = tmp_path / "notes.csv"
    not_a_list.write_text("name,size\na,1\n")
    proc = run_cli("hashlist", "import", str(not_a_list), "--case", str(tmp_path / "new"), check=False)
    assert proc.returncode == 2 and "no hash column" in proc.stderr
    assert not (tmp_path / "new").exists()
