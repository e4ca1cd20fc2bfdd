"""Accounts, roles and the hash-chained audit trail, without the UI."""

from __future__ import annotations

import json
import sqlite3

import pytest
from test_ui_support import PASSWORD, build_case, cli, cli_json

from ui.auth import (
    PERMISSIONS,
    ROLES,
    User,
    add_user,
    authenticate,
    can,
    hash_password,
    load_user,
    set_disabled,
    verify_password,
)
from vidpipe.store import audit
from vidpipe.store.casedb import open_case


def test_password_hash_is_salted_scrypt_and_verifies():
    h1, h2 = hash_password("s3cret-passphrase"), hash_password("s3cret-passphrase")
    assert h1 != h2  # a fresh salt each time
    scheme, n, r, p, salt, key = h1.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(key)) == 32
    assert verify_password("s3cret-passphrase", h1)
    assert not verify_password("s3cret-passphrasE", h1)
    for bad in ("", "plain", "scrypt$1$2$3$zz$zz", "md5$1$1$1$00$00", h1.replace("scrypt", "bcrypt")):
        assert not verify_password("s3cret-passphrase", bad)
    # A tampered row cannot make the server burn unbounded memory/CPU.
    assert not verify_password("x", f"scrypt${2**24}$8$1${'00' * 16}${'00' * 32}")


def test_permissions_matrix():
    assert set(ROLES) == {"examiner", "analyst", "reviewer", "admin"}
    assert can("admin", "manage_users") and not can("reviewer", "manage_users")
    assert not can("reviewer", "ingest") and can("examiner", "ingest")
    assert can("reviewer", "decide") and not can("analyst", "decide")
    assert not can(None, "view") and not can("root", "view") and not can("admin", "no-such-permission")
    assert all(can("admin", perm) for perm in PERMISSIONS)


def test_accounts(tmp_path):
    conn = build_case(tmp_path / "case")
    user = authenticate(conn, "reviewer", PASSWORD)
    assert user is not None and user.role == "reviewer"
    assert authenticate(conn, "reviewer", PASSWORD + "x") is None
    assert authenticate(conn, "nobody", PASSWORD) is None
    assert add_user(conn, "reviewer", "reviewer", PASSWORD)[1] == "user 'reviewer' already exists"
    assert "at least" in add_user(conn, "eve", "reviewer", "short")[1]
    assert "role must be" in add_user(conn, "eve", "superuser", PASSWORD)[1]
    stored = conn.execute("SELECT password_hash FROM users WHERE name='reviewer'").fetchone()[0]
    assert PASSWORD not in stored and stored.startswith("scrypt$")
    assert set_disabled(conn, "reviewer", True)
    assert authenticate(conn, "reviewer", PASSWORD) is None
    assert load_user(conn, user.user_id) is None


def _chain(tmp_path, n=6) -> sqlite3.Connection:
    _, conn = open_case(tmp_path / "case", create=True)
    for i in range(n):
        audit.append(conn, "alice", "search", f"target{i}", {"i": i, "text": "ünïcode"})
    for trigger in audit.APPEND_ONLY_TRIGGERS:  # the tampering below is an attacker's: triggers dropped first
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    return conn


def test_chain_links_each_entry_to_the_previous(tmp_path):
    conn = _chain(tmp_path)
    rows = conn.execute("SELECT seq, prev_hash, entry_hash FROM audit ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0][1] == audit.GENESIS_HASH
    assert all(rows[i][1] == rows[i - 1][2] for i in range(1, len(rows)))
    assert audit.verify_chain(conn) is None
    assert audit.chain_status(conn)["head_seq"] == 6


@pytest.mark.parametrize("column,value", [("detail", '{"i":2,"text":"edited"}'), ("actor", "mallory"),
                                          ("ts_utc", "2001-01-01T00:00:00.000000Z"), ("entry_hash", "0" * 64)])
def test_editing_one_row_breaks_the_chain_at_that_row(tmp_path, column, value):
    conn = _chain(tmp_path)
    conn.execute(f"UPDATE audit SET {column}=? WHERE seq=3", (value,))
    assert audit.verify_chain(conn) == 3


def test_deleting_or_rehashing_one_row_is_found(tmp_path):
    conn = _chain(tmp_path)
    conn.execute("DELETE FROM audit WHERE seq=4")
    assert audit.verify_chain(conn) == 5
    conn = _chain(tmp_path / "b")
    # Re-hash an edited row consistently: the next row's prev_hash no longer matches.
    row = conn.execute("SELECT * FROM audit WHERE seq=2").fetchone()
    forged = audit.entry_hash(2, row["ts_utc"], "mallory", row["action"], row["target"], row["detail"],
                              row["prev_hash"])
    conn.execute("UPDATE audit SET actor='mallory', entry_hash=? WHERE seq=2", (forged,))
    assert audit.verify_chain(conn) == 3


def test_append_joins_the_callers_transaction(tmp_path):
    conn = _chain(tmp_path, n=1)
    conn.execute("BEGIN IMMEDIATE")
    audit.append(conn, "bob", "decision", "x")
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 1
    assert audit.verify_chain(conn) is None


def test_cli_user_add_reads_the_password_from_stdin(tmp_path):
    case = tmp_path / "case"
    build_case(case).close()
    out = cli_json("user", "add", "carol", "--role", "analyst", "--case", str(case), "--password-stdin", "--json",
                   input_text="a long enough password\n")
    assert out == {"name": "carol", "role": "analyst", "created": True}
    _, conn = open_case(case, create=False)
    assert authenticate(conn, "carol", "a long enough password") == User(5, "carol", "analyst")
    entry = conn.execute("SELECT actor, action, target, detail FROM audit ORDER BY seq DESC").fetchone()
    assert entry["action"] == "user_add" and entry["target"] == "carol" and entry["actor"].startswith("cli:")
    assert json.loads(entry["detail"]) == {"role": "analyst"}
    again = cli("user", "add", "carol", "--role", "analyst", "--case", str(case), "--password-stdin",
                input_text="a long enough password\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    weak = cli("user", "add", "dave", "--role", "reviewer", "--case", str(case), "--password-stdin",
                input_text="short\n")
    assert weak.returncode == 2
    listed = cli_json("user", "list", "--case", str(case), "--json")
    assert "password_hash" not in json.dumps(listed) and len(listed["users"]) == 5


def test_cli_verify_reports_the_broken_audit_entry(tmp_path):
    case = tmp_path / "case"
    conn = build_case(case)
    for i in range(5):
        audit.append(conn, "alice", "reveal", f"t{i}")
    conn.close()
    before = json.loads(cli("verify", "--case", str(case), "--no-rehash", "--json").stdout)
    if not any("audit" in name for name in before.get("checks", {})):
        pytest.skip("`vidpipe verify` does not call ui.audit.verify_chain yet (the lead wires it)")
    conn = sqlite3.connect(case / "case.sqlite")
    for trigger in audit.APPEND_ONLY_TRIGGERS:  # as an attacker would
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.execute("UPDATE audit SET target='edited' WHERE seq=3")
    conn.commit()
    proc = cli("verify", "--case", str(case), "--no-rehash", "--json")
    assert proc.returncode == 1
    assert "3" in json.dumps({k: v for k, v in json.loads(proc.stdout)["checks"].items() if "audit" in k})
