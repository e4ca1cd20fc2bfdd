"""Decisions bound to the audit chain, append-only tables, and external anchors of the chain head.

Tampering is done the way an attacker with the database file would: drop the append-only
triggers with sqlite3, edit, and (where it matters) re-hash the chain so that it holds again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3

import pytest
from test_ui_support import IMAGES, build_case, sha_of

from ui.auth import User
from ui.decisions import Candidate, decisions_for_media, record_decision
from ui.exports import build_export
from vidpipe.cli.main import main
from vidpipe.store import audit
from vidpipe.store.decision_log import check_bindings

REVIEWER = User(3, "reviewer", "reviewer")
EXAMINER = User(1, "examiner", "examiner")


def _cand(media: str = IMAGES[0], score: float = 0.81) -> Candidate:
    return Candidate("f" * 64, "/q.jpg", "q", "image", "face", 0, None, sha_of(media), "/x.jpg", "image",
                     None, (1.0, 2.0, 3.0, 4.0), 1, score, 0.5, 1, True)


@pytest.fixture()
def case(tmp_path):
    """A case with three decisions (one with ``extra``) and a few other audit entries."""
    root = tmp_path / "case"
    conn = build_case(root)
    audit.append(conn, "analyst", "search", "f" * 64, {"mode": "face"})
    assert record_decision(conn, REVIEWER, _cand(), "confirmed", "same scar")[1] is None
    assert record_decision(conn, REVIEWER, _cand(IMAGES[1], 0.6), "rejected", "different ears",
                           extra={"overrules": None, "queue_item_id": 7})[1] is None
    audit.append(conn, "reviewer", "reveal", sha_of(IMAGES[2]))
    assert record_decision(conn, REVIEWER, _cand(IMAGES[2], 0.55), "unsure", "blurred")[1] is None
    conn.close()
    return root


def _attacker(root) -> sqlite3.Connection:
    conn = sqlite3.connect(root / "case.sqlite", isolation_level=None)
    conn.row_factory = sqlite3.Row
    for trigger in audit.APPEND_ONLY_TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    return conn


def _rehash(conn: sqlite3.Connection) -> None:
    """Recompute every entry's prev_hash and entry_hash: the chain holds again after any edit."""
    prev = audit.GENESIS_HASH
    for r in conn.execute("SELECT * FROM audit ORDER BY seq").fetchall():
        digest = audit.entry_hash(r["seq"], r["ts_utc"], r["actor"], r["action"], r["target"], r["detail"], prev)
        conn.execute("UPDATE audit SET prev_hash=?, entry_hash=? WHERE seq=?", (prev, digest, r["seq"]))
        prev = digest


def _verify(capsys, root, *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    rc = main(["verify", "--case", str(root), "--no-rehash", "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)


def _run(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(args))
    return rc, capsys.readouterr().out


def _keygen_and_checkpoint(capsys, tmp_path, root) -> tuple[str, str]:
    key = tmp_path / "keys" / "case.key"
    assert _run(capsys, "audit", "keygen", "--key", str(key), "--case", str(root), "--json")[0] == 0
    out = tmp_path / "anchors" / "checkpoint.json"
    rc, _ = _run(capsys, "audit", "checkpoint", "--case", str(root), "--key", str(key), "--out", str(out))
    assert rc == 0
    return str(key), str(out)


def test_decision_entry_holds_every_field_and_extra(case):
    conn = sqlite3.connect(case / "case.sqlite")
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM decisions WHERE decision_id = 2").fetchone())
    entry = conn.execute("SELECT * FROM audit WHERE seq = ?", (row["audit_seq"],)).fetchone()
    detail = json.loads(entry["detail"])
    assert entry["action"] == "decision" and entry["actor"] == "reviewer" and entry["target"] == row["media_sha256"]
    assert {k: detail[k] for k in row if k != "audit_seq"} == {k: v for k, v in row.items() if k != "audit_seq"}
    assert detail["extra"] == {"overrules": None, "queue_item_id": 7}
    shown = decisions_for_media(conn, row["media_sha256"])
    assert shown[0]["bound"] and shown[0]["integrity"] == "ok" and shown[0]["extra"]["queue_item_id"] == 7
    assert check_bindings(conn)["ok"]


def test_triggers_make_audit_and_decisions_append_only(case):
    conn = sqlite3.connect(case / "case.sqlite", isolation_level=None)
    for sql in ("UPDATE audit SET actor='mallory' WHERE seq=1", "DELETE FROM audit WHERE seq=(SELECT max(seq) FROM audit)",
                "UPDATE decisions SET decision='rejected' WHERE decision_id=1", "DELETE FROM decisions"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 3


def test_edited_decision_row_fails_verify_and_is_shown_unbound(case, capsys):
    assert _verify(capsys, case)[0] == 0
    conn = _attacker(case)
    conn.execute("UPDATE decisions SET decision='confirmed', reason='edited' WHERE decision_id=2")
    rc, out = _verify(capsys, case)
    check = out["checks"]["decision_bindings"]
    assert rc == 1 and not out["ok"] and out["checks"]["audit_chain"]["ok"]  # the chain itself still holds
    texts = [p["problem"] for p in check["problems"]]
    assert {p["decision_id"] for p in check["problems"]} == {2} and len(texts) == 2, texts
    assert any("decision 2: decision is 'confirmed'" in t and "'rejected'" in t for t in texts)
    assert any("decision 2: reason is 'edited'" in t for t in texts)
    shown = decisions_for_media(conn, sha_of(IMAGES[1]))
    assert not shown[0]["bound"] and "NOT BOUND" in shown[0]["integrity"]


def test_missing_rows_and_entries_are_named(case, capsys):
    conn = _attacker(case)
    conn.execute("DELETE FROM decisions WHERE decision_id=1")
    conn.execute("INSERT INTO decisions(decision_id, query_sha256, mode, media_sha256, decision, reviewer, "
                 "decided_utc) VALUES (9, ?, 'face', ?, 'confirmed', 'mallory', '2026-01-01T00:00:00Z')",
                 ("f" * 64, sha_of(IMAGES[0])))
    rc, out = _verify(capsys, case)
    texts = " | ".join(p["problem"] for p in out["checks"]["decision_bindings"]["problems"])
    assert rc == 1 and "decision 9 has no audit entry" in texts
    assert "records decision 1, but no decision row holds it" in texts


def test_truncated_chain_passes_plain_verify_but_not_the_anchor(case, tmp_path, capsys):
    from vidpipe.store.casedb import open_case

    _, conn = open_case(case, create=False)
    for i in range(2):
        audit.append(conn, "reviewer", "reveal", f"t{i}")
    _, checkpoint = _keygen_and_checkpoint(capsys, tmp_path, case)
    rc, out = _verify(capsys, case, "--expect-head", checkpoint)
    assert rc == 0 and out["checks"]["audit_anchor"]["signature"] == "valid", out["checks"]["audit_anchor"]
    anchored = json.load(open(checkpoint))["head"]["seq"]
    conn = _attacker(case)
    conn.execute("DELETE FROM audit WHERE seq >= ?", (anchored - 2,))  # the checkpoint entry and two reveals
    rc, out = _verify(capsys, case)
    assert rc == 0 and out["checks"]["audit_chain"]["ok"]  # nothing in the table shows the cut
    rc, out = _verify(capsys, case, "--expect-head", checkpoint)
    anchor = out["checks"]["audit_anchor"]
    assert rc == 1 and not out["ok"] and not anchor["ok"]
    assert "shorter than the anchor" in anchor["problems"][0]


def test_rehashed_chain_fails_against_the_anchor(case, tmp_path, capsys):
    _, checkpoint = _keygen_and_checkpoint(capsys, tmp_path, case)
    conn = _attacker(case)
    # Change decision 1 in its row and in its entry alike, then re-hash the whole chain.
    seq = conn.execute("SELECT audit_seq FROM decisions WHERE decision_id=1").fetchone()[0]
    detail = json.loads(conn.execute("SELECT detail FROM audit WHERE seq=?", (seq,)).fetchone()[0])
    detail["decision"] = "rejected"
    conn.execute("UPDATE audit SET detail=? WHERE seq=?", (audit._canonical(detail), seq))
    conn.execute("UPDATE decisions SET decision='rejected' WHERE decision_id=1")
    _rehash(conn)
    rc, out = _verify(capsys, case)
    assert rc == 0, out  # chain and bindings hold: only the anchor can tell
    rc, out = _verify(capsys, case, "--expect-head", checkpoint)
    assert rc == 1 and "re-hashed" in out["checks"]["audit_anchor"]["problems"][0]


def test_forged_checkpoints_are_rejected(case, tmp_path, capsys):
    key, checkpoint = _keygen_and_checkpoint(capsys, tmp_path, case)
    doc = json.load(open(checkpoint))
    # 1. The signature is over another head.
    forged = dict(doc, head={**doc["head"], "seq": doc["head"]["seq"] - 1})
    forged["head"]["hash"] = sqlite3.connect(case / "case.sqlite").execute(
        "SELECT entry_hash FROM audit WHERE seq=?", (forged["head"]["seq"],)).fetchone()[0]
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    rc, out = _verify(capsys, case, "--expect-head", str(path))
    assert rc == 1 and out["checks"]["audit_anchor"]["signature"] == "INVALID"
    # 2. Validly signed, but with a key this case never recorded.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vidpipe.store.anchor import _canonical

    other = Ed25519PrivateKey.generate()
    raw = other.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    path.write_text(json.dumps(dict(doc, public_key=raw.hex(), signature=other.sign(_canonical(doc["head"])).hex())))
    rc, out = _verify(capsys, case, "--expect-head", str(path))
    assert rc == 1 and "not recorded" in out["checks"]["audit_anchor"]["problems"][0]
    # 3. The real checkpoint, but the verifier pins another key.
    pub = tmp_path / "other.pub"
    pub.write_text(raw.hex())
    rc, out = _verify(capsys, case, "--expect-head", checkpoint, "--public-key", str(pub))
    assert rc == 1 and "--public-key" in out["checks"]["audit_anchor"]["problems"][0]
    rc, out = _verify(capsys, case, "--expect-head", checkpoint, "--public-key", key + ".pub")
    assert rc == 0


def test_key_handling(case, tmp_path, capsys, monkeypatch):
    assert _run(capsys, "audit", "keygen", "--key", str(case / "k.key"), "--case", str(case))[0] == 2
    key = tmp_path / "k.key"
    monkeypatch.setenv("VP_PASS", "a long passphrase")
    rc, out = _run(capsys, "audit", "keygen", "--key", str(key), "--passphrase-env", "VP_PASS", "--json")
    assert rc == 0 and json.loads(out)["passphrase"] and (key.stat().st_mode & 0o777) == 0o600
    assert b"ENCRYPTED" in key.read_bytes()
    assert _run(capsys, "audit", "keygen", "--key", str(key))[0] == 2  # never overwrites
    args = ["audit", "checkpoint", "--case", str(case), "--key", str(key)]
    assert _run(capsys, *args)[0] == 2  # encrypted, no passphrase given
    monkeypatch.setenv("VP_WRONG", "wrong")
    assert _run(capsys, *args, "--passphrase-env", "VP_WRONG")[0] == 2
    rc, out = _run(capsys, *args, "--passphrase-env", "VP_PASS", "--json")
    assert rc == 0 and json.loads(out)["format"] == "vidpipe-audit-checkpoint"
    os.chmod(key, 0o640)
    assert _run(capsys, *args, "--passphrase-env", "VP_PASS")[0] == 2  # readable by the group
    inside = case / "inside.key"
    inside.write_bytes(key.read_bytes())
    os.chmod(inside, 0o600)
    assert _run(capsys, "audit", "checkpoint", "--case", str(case), "--key", str(inside),
                "--passphrase-env", "VP_PASS")[0] == 2


def test_exports_serve_as_unsigned_anchors(case, tmp_path, capsys):
    conn = sqlite3.connect(case / "case.sqlite", isolation_level=None)
    conn.row_factory = sqlite3.Row
    anchors = {}
    for fmt in ("json", "vics", "csv", "html"):
        data, _, error = build_export(conn, case, fmt, EXAMINER)
        assert error is None
        anchors[fmt] = tmp_path / f"decisions.{fmt}"
        anchors[fmt].write_bytes(data)
    for fmt, extra in (("vics", []), ("jsonl", ["--audit-head"]), ("csv", ["--audit-head"])):
        anchors[f"cli-{fmt}"] = tmp_path / f"export.{fmt}"
        assert _run(capsys, "export", "--case", str(case), "--format", fmt, "--out", str(anchors[f"cli-{fmt}"]),
                    *extra)[0] == 0
    jsonl = anchors["cli-jsonl"].read_text().splitlines()
    assert "audit_head" in json.loads(jsonl[-1]) and all("sha256" in json.loads(line) for line in jsonl[:-1])
    for name, path in anchors.items():
        rc, out = _verify(capsys, case, "--expect-head", str(path))
        anchor = out["checks"]["audit_anchor"]
        assert rc == 0 and anchor["signed"] is False and "unsigned" in anchor["note"], (name, anchor)
    # Cut the chain back to before the newest decision (the UI's CSV pins that decision's entry).
    newest = conn.execute("SELECT max(audit_seq) FROM decisions").fetchone()[0]
    _attacker(case).execute("DELETE FROM audit WHERE seq >= ?", (newest,))
    for name, path in anchors.items():
        rc, out = _verify(capsys, case, "--expect-head", str(path))
        assert rc == 1 and not out["checks"]["audit_anchor"]["ok"], name


def test_exports_refuse_or_warn_when_a_binding_is_broken(case, capsys):
    conn = sqlite3.connect(case / "case.sqlite", isolation_level=None)
    conn.row_factory = sqlite3.Row
    assert build_export(conn, case, "json", EXAMINER)[2] is None
    _attacker(case).execute("UPDATE decisions SET reason='edited' WHERE decision_id=3")
    data, _, error = build_export(conn, case, "json", EXAMINER)
    assert data is None and "refused" in error and "decision 3" in error
    data, _, error = build_export(conn, case, "json", EXAMINER, allow_broken=True)
    doc = json.loads(data)
    assert error is None and "DOES NOT HOLD" in doc["integrity_warning"]["message"]
    assert [d["integrity"] != "ok" and "NOT BOUND" in d["integrity"] for d in doc["decisions"]] == [False, False, True]
    rows = list(csv.DictReader(io.StringIO(build_export(conn, case, "csv", EXAMINER, allow_broken=True)[0].decode())))
    assert all("DOES NOT HOLD" in r["integrity"] for r in rows)
    html = build_export(conn, case, "html", EXAMINER, allow_broken=True)[0].decode()
    assert "THE AUDIT TRAIL OF THIS CASE DOES NOT HOLD" in html
    # The command-line export refuses too (exit 1), or writes the warning in with --allow-broken-audit.
    assert _run(capsys, "export", "--case", str(case), "--format", "vics")[0] == 1
    rc, out = _run(capsys, "export", "--case", str(case), "--format", "vics", "--allow-broken-audit")
    assert rc == 0 and json.loads(out)["value"][0]["IntegrityWarning"]["problems"]
    rc, out = _run(capsys, "export", "--case", str(case), "--format", "jsonl", "--allow-broken-audit")
    assert rc == 0 and "integrity_warning" in json.loads(out.splitlines()[-1])


def test_verify_still_passes_after_a_retention_removal_of_decided_content(case, capsys):
    """Retention archives the decisions of removed content in the tombstone: their entries are
    then checked against the archived copy, and nothing else may delete a decision."""
    from vidpipe.store.casedb import open_case
    from vidpipe.store.retention import REVIEW_TABLES, _dependants, _foreign_keys, _remove_one

    paths, conn = open_case(case, create=False)
    # The removal step itself (remove_content also rebuilds indexes, which this small case lacks).
    deps = [d for d in _dependants(_foreign_keys(conn), "media") if d[0] in REVIEW_TABLES | {"faces", "face_person"}]
    conn.execute("BEGIN IMMEDIATE")
    _remove_one(conn, deps, sha_of(IMAGES[1]), "court order", "rita", None)
    conn.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 2
    check = check_bindings(conn)
    assert check["ok"] and check["archived"] == 1, check
    # Editing the archived copy in the tombstone is found as well.
    stone = conn.execute("SELECT tombstone_id, detail FROM retention_tombstones").fetchone()
    detail = json.loads(stone[1])
    detail["review_records"]["decisions"][0]["decision"] = "confirmed"
    conn.execute("UPDATE retention_tombstones SET detail=? WHERE tombstone_id=?", (json.dumps(detail), stone[0]))
    assert "archived decision 2: decision is 'confirmed'" in check_bindings(conn)["problems"][0]["problem"]


def test_decisions_made_before_migration_11_are_bound_to_their_entries(tmp_path, monkeypatch):
    """A case from before migration 11: the migration gives each decision the entry that logged it;
    entries of that time lack reviewer/decided_utc, which come from the entry's actor (not compared)."""
    from vidpipe.store import casedb

    monkeypatch.setattr(casedb, "MIGRATIONS", [m for m in casedb.MIGRATIONS if m[0] < 11])
    _, conn = casedb.open_case(tmp_path / "case", create=True)
    conn.execute("INSERT INTO runs(run_id, command, started_utc, status, argv, tool_version, libraries, config, "
                 "config_hash) VALUES ('r', 'ingest', 'now', 'completed', '[]', '0', '{}', '{}', '0')")
    conn.execute("INSERT INTO media(sha256, md5, sha1, size, mime, label, kind, state, first_run) "
                 "VALUES (?, 'm', 's', 1, 'image/jpeg', 'JPEG', 'image', 'done', 'r')", ("a" * 64,))
    conn.execute("INSERT INTO decisions(query_sha256, mode, media_sha256, decision, reason, reviewer, decided_utc) "
                 "VALUES (?, 'face', ?, 'rejected', 'old', 'olga', '2025-01-01T00:00:00Z')", ("f" * 64, "a" * 64))
    audit.append(conn, "olga", "decision", "a" * 64, {"decision_id": 1, "decision": "rejected", "reason": "old",
                                                      "mode": "face", "query_sha256": "f" * 64})
    conn.close()
    monkeypatch.undo()
    _, conn = casedb.open_case(tmp_path / "case", create=False)
    assert conn.execute("SELECT audit_seq FROM decisions").fetchone()[0] == 1
    check = check_bindings(conn)
    assert check["ok"] and check["legacy"] == 1, check
    for trigger in audit.APPEND_ONLY_TRIGGERS:
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("UPDATE decisions SET reviewer='mallory'")
    assert "reviewer is 'mallory'" in check_bindings(conn)["problems"][0]["problem"]
