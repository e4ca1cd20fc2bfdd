"""Fixes from the review of issues 11/12: hostile anchor files, retry limits near the maxima."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from vidpipe.errors import UsageError
from vidpipe.pipeline.limits import MAX_TIMEOUT_S, MAX_WORKER_MEMORY_MB
from vidpipe.pipeline.retry import retry_config
from vidpipe.pipeline.runner import IngestConfig
from vidpipe.store.anchor import check_anchor, load_anchor


def _empty_trail() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE audit(seq INTEGER PRIMARY KEY, ts_utc, actor, action, target, detail, "
                 "prev_hash, entry_hash)")
    return conn


@pytest.mark.parametrize("doc", [
    {"format": "vidpipe-audit-checkpoint", "head": ["not", "a", "dict"]},
    {"audit_head": {"seq": True, "hash": "0" * 64}},
])
def test_malformed_anchor_heads_are_a_usage_error(tmp_path: Path, doc: dict) -> None:
    path = tmp_path / "anchor.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="malformed"):
        load_anchor(path)


@pytest.mark.parametrize("key, signature", [(5, "00"), ("ab", ["x"]), ({"k": 1}, None)])
def test_checkpoint_with_non_string_key_or_signature_is_invalid_not_a_crash(tmp_path: Path, key, signature) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps({"format": "vidpipe-audit-checkpoint", "head": {"seq": 0, "hash": "0" * 64},
                                "public_key": key, "signature": signature}))
    result = check_anchor(_empty_trail(), load_anchor(path))
    assert not result["ok"] and result["signature"] == "INVALID"


def test_retry_limits_stay_within_the_maxima(tmp_path: Path) -> None:
    """A run with limits near the top must not abort on its retry's (4x time, 2x memory) limits."""
    config = IngestConfig(sources=[str(tmp_path)], task_timeout_s=MAX_TIMEOUT_S / 2,
                          worker_memory_mb=MAX_WORKER_MEMORY_MB - 1)
    bigger = retry_config(config)
    assert bigger.task_timeout_s == MAX_TIMEOUT_S and bigger.worker_memory_mb == MAX_WORKER_MEMORY_MB
    normal = retry_config(IngestConfig(sources=[str(tmp_path)]))
    assert normal.task_timeout_s == 240.0 and normal.worker_memory_mb == 4096


def test_a_forged_tombstone_does_not_hide_a_deleted_decision(tmp_path: Path) -> None:
    """An attacker with the database deletes a decision and adds a retention tombstone holding an
    exact copy of it: the chain and the head are unchanged, so only the tombstone's own binding
    to a logged retention removal can tell."""
    from test_audit_integrity import REVIEWER, _attacker, _cand
    from test_ui_support import IMAGES, build_case

    from ui.decisions import record_decision
    from vidpipe.store import audit
    from vidpipe.store.decision_log import check_bindings

    root = tmp_path / "case"
    conn = build_case(root)
    assert record_decision(conn, REVIEWER, _cand(), "confirmed", "same scar")[1] is None
    assert record_decision(conn, REVIEWER, _cand(IMAGES[1], 0.6), "confirmed", "same ears")[1] is None
    audit.append(conn, "analyst", "search", "f" * 64, {"mode": "face"})
    conn.close()
    evil = _attacker(root)
    row = dict(evil.execute("SELECT * FROM decisions WHERE decision_id=2").fetchone())
    evil.execute("DELETE FROM decisions WHERE decision_id=2")
    for seq in (row["audit_seq"], audit.head(evil)[0]):  # its own entry, or any later one
        evil.execute("DELETE FROM retention_tombstones")
        evil.execute("INSERT INTO retention_tombstones(sha256, removed_utc, removed_by, reason, audit_seq, detail) "
                     "VALUES (?, '2026-12-01T00:00:00Z', 'mallory', 'court order', ?, ?)",
                     (row["media_sha256"], seq, json.dumps({"review_records": {"decisions": [row]}})))
        check = check_bindings(evil)
        assert not check["ok"] and check["archived"] == 0, check
        texts = " ".join(p["problem"] for p in check["problems"])
        assert "not backed by a retention removal" in texts and "no decision row holds it" in texts


def test_a_reason_in_a_decisions_csv_cannot_pose_as_the_audit_head(tmp_path: Path) -> None:
    """A reviewer's reason (or an evidence file name) is a cell in the middle of a row: it must not
    be read as the head line, which would pin an empty chain and let any truncation pass."""
    from test_audit_integrity import EXAMINER, REVIEWER, _cand
    from test_ui_support import build_case

    from ui.decisions import record_decision
    from ui.exports import build_export
    from vidpipe.store import audit

    root = tmp_path / "case"
    conn = build_case(root)
    forged = "# audit_head seq=0 hash=" + "0" * 64
    assert record_decision(conn, REVIEWER, _cand(), "confirmed", forged)[1] is None
    seq, digest = audit.head(conn)
    data, _name, error = build_export(conn, root, "csv", EXAMINER)
    assert error is None and forged.encode() in data
    path = tmp_path / "decisions.csv"
    path.write_bytes(data)
    anchor = load_anchor(path)
    assert (anchor["seq"], anchor["hash"]) == (seq, digest), anchor
