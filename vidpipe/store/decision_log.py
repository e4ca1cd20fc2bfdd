"""Reviewers' decisions bound to the hash-chained audit trail.

A decision row (table ``decisions``) is a copy made for queries; the record is its audit entry.
Every field of the row is written into that entry's detail (plus ``extra``: overrules, queue
item, ...), the row names the entry (``audit_seq``), and the entry's hash chains it to the
whole trail. So a decision can be derived from its entry, and an edited row, an edited entry, a
row without an entry and an entry without a row are all visible:

- ``append_decision`` writes the row and its entry in the caller's transaction;
- ``read_decisions`` is the one way to read decisions for display or export: each row comes with
  ``bound`` and ``integrity`` saying whether it still equals its entry;
- ``check_bindings`` checks every row and every decision entry (``vidpipe verify``);
- ``integrity`` adds the chain itself (exports refuse, or warn inside, when it is not ok).

Decisions removed under a retention order are archived in the tombstone (vidpipe/store/retention.py);
their entries stay in the chain and are checked against the archived copy.

Entries written before migration 11 lack ``reviewer``/``media_sha256``/``decided_utc`` in their
detail: those are taken from the entry's actor and target, and ``decided_utc`` is not compared
(such decisions are counted as ``legacy``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from vidpipe.store import audit

ACTION = "decision"
# Every column of a decision row that its audit entry records (all of them but audit_seq).
FIELDS = ("decision_id", "query_sha256", "query_face", "mode", "media_sha256", "face_id", "video_time_s",
          "score", "threshold", "decision", "reason", "reviewer", "decided_utc")
MAX_PROBLEMS = 1000  # problems listed in full; the count is always exact


class DecisionLogError(RuntimeError):
    """The decision could not be bound to its audit entry (nothing was written)."""


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def _next_decision_id(conn: sqlite3.Connection) -> int:
    """One more than any decision id ever used, in the table or in the trail: a decision removed
    under retention keeps its id, so a later decision never reuses it."""
    in_table = conn.execute("SELECT coalesce(max(decision_id), 0) FROM decisions").fetchone()[0]
    # Ids only grow with the trail, so the newest decision entry holds the largest (found by
    # walking back from the end of the trail, not by reading all of it).
    row = conn.execute("SELECT CAST(json_extract(detail, '$.decision_id') AS INTEGER) FROM audit "
                       "WHERE action = ? AND json_valid(detail) ORDER BY seq DESC LIMIT 1", (ACTION,)).fetchone()
    in_trail = row[0] if row and row[0] is not None else 0
    return max(int(in_table), int(in_trail)) + 1


def append_decision(conn: sqlite3.Connection, fields: dict[str, Any],
                    extra: dict[str, Any] | None = None) -> tuple[int, int]:
    """Insert a decision row and its audit entry; returns ``(decision_id, audit_seq)``.

    ``fields`` holds every name of `FIELDS` but ``decision_id``. Must run inside the caller's
    write transaction (BEGIN IMMEDIATE), so the entry's ``seq`` is known before the row is
    written (the row is never updated afterwards: the table is append-only).
    """
    if not conn.in_transaction:
        raise DecisionLogError("append_decision needs the caller's write transaction")
    missing = [f for f in FIELDS if f != "decision_id" and f not in fields]
    if missing:
        raise DecisionLogError(f"decision fields missing: {', '.join(missing)}")
    decision_id = _next_decision_id(conn)
    row = {**{f: fields[f] for f in FIELDS if f != "decision_id"}, "decision_id": decision_id}
    seq = audit.head(conn)[0] + 1
    columns = ", ".join([*FIELDS, "audit_seq"])
    conn.execute(f"INSERT INTO decisions({columns}) VALUES ({','.join('?' * (len(FIELDS) + 1))})",
                 [row[f] for f in FIELDS] + [seq])
    detail = {f: row[f] for f in FIELDS}
    if extra:
        detail["extra"] = dict(extra)
    written = audit.append(conn, row["reviewer"], ACTION, row["media_sha256"], detail)
    if written != seq:  # cannot happen under the write lock; refuse rather than store an unbound row
        raise DecisionLogError(f"audit entry {written} written, {seq} expected")
    return decision_id, seq


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def compare(row: dict[str, Any], entry: dict[str, Any] | None, *, what: str = "decision") -> list[str]:
    """Every difference between a decision (row or archived copy) and its audit entry, as sentences.

    ``entry`` holds the audit columns (seq, ts_utc, actor, action, target, detail, prev_hash,
    entry_hash) or is None when there is none.
    """
    did = row.get("decision_id")
    if entry is None:
        return [f"{what} {did} has no audit entry"]
    seq = entry["seq"]
    problems = []
    if entry["action"] != ACTION:
        return [f"{what} {did} points at audit entry {seq}, which is a {entry['action']!r} entry"]
    if audit.entry_hash(seq, entry["ts_utc"], entry["actor"], entry["action"], entry["target"], entry["detail"],
                        entry["prev_hash"]) != entry["entry_hash"]:
        problems.append(f"audit entry {seq} of {what} {did} does not match its own hash")
    try:
        detail = json.loads(entry["detail"]) if entry["detail"] else {}
    except ValueError:
        detail = None
    if not isinstance(detail, dict):
        return [*problems, f"audit entry {seq} of {what} {did}: detail is not a JSON object"]
    for key, column in (("reviewer", "actor"), ("media_sha256", "target")):
        if key in detail and detail[key] != entry[column]:
            problems.append(f"audit entry {seq}: {key} {detail[key]!r} differs from the entry's {column} "
                            f"{entry[column]!r}")
    expected = {"reviewer": entry["actor"], "media_sha256": entry["target"], **detail}
    for field in FIELDS:
        if field in expected and field in row and not _same(row[field], expected[field]):
            problems.append(f"{what} {did}: {field} is {row[field]!r} but its audit entry {seq} says "
                            f"{expected[field]!r}")
    if "audit_seq" in row and row["audit_seq"] is not None and row["audit_seq"] != seq:
        problems.append(f"{what} {did}: audit_seq is {row['audit_seq']} but its entry is {seq}")
    return problems


def _entry(row: sqlite3.Row | dict[str, Any], prefix: str = "") -> dict[str, Any] | None:
    if row[f"{prefix}seq"] is None:
        return None
    return {k: row[f"{prefix}{k}"] for k in
            ("seq", "ts_utc", "actor", "action", "target", "detail", "prev_hash", "entry_hash")}


def _legacy(entry: dict[str, Any] | None) -> bool:
    return entry is not None and '"decided_utc"' not in (entry["detail"] or "")


def read_decisions(conn: sqlite3.Connection, where: str = "", params: tuple | list = (),
                   order: str = "d.decision_id") -> list[dict[str, Any]]:
    """Decisions for display or export, each checked against its audit entry.

    ``where``/``order`` are SQL over the alias ``d`` (decisions); values go in ``params``.
    Each dict holds the row's columns plus ``audit_seq``/``audit_entry_hash``, ``extra`` (from the entry),
    ``bound`` (the row equals its intact entry) and ``integrity`` ("ok" or the differences).
    """
    audit_cols = "a.seq AS a_seq, a.ts_utc AS a_ts_utc, a.actor AS a_actor, a.action AS a_action, " \
                 "a.target AS a_target, a.detail AS a_detail, a.prev_hash AS a_prev_hash, " \
                 "a.entry_hash AS a_entry_hash"
    if "audit_seq" in _columns(conn, "decisions"):
        join = "LEFT JOIN audit a ON a.seq = d.audit_seq"
    else:  # a case opened read-only before migration 11: find the entry by decision id
        join = ("LEFT JOIN audit a ON a.seq = (SELECT max(x.seq) FROM audit x WHERE x.action = 'decision' "
                "AND json_valid(x.detail) AND json_extract(x.detail, '$.decision_id') = d.decision_id)")
    sql = f"SELECT d.*, {audit_cols} FROM decisions d {join} {('WHERE ' + where) if where else ''} ORDER BY {order}"
    out = []
    for r in conn.execute(sql, tuple(params)):
        row = {k: r[k] for k in r.keys() if not k.startswith("a_")}
        entry = _entry(r, "a_")
        problems = compare(row, entry)
        detail: dict[str, Any] = {}
        if entry is not None:
            try:
                detail = json.loads(entry["detail"] or "{}")
            except ValueError:
                detail = {}
        row["audit_seq"] = entry["seq"] if entry else row.get("audit_seq")
        row["audit_entry_hash"] = entry["entry_hash"] if entry else None
        row["extra"] = detail.get("extra") if isinstance(detail, dict) else None
        row["bound"] = not problems
        row["integrity"] = "ok" if not problems else "NOT BOUND TO THE AUDIT TRAIL: " + "; ".join(problems)
        out.append(row)
    return out


REMOVAL_ACTION = "retention_remove"  # vidpipe/store/retention.py: AUDIT_ACTION


def _archived(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], list[str]]:
    """Decisions archived in retention tombstones (removed with their content), and problems.

    A tombstone is a plain row: whoever can write the database could add one holding a copy of a
    decision they deleted. So a copy counts only when its tombstone names the ``retention_remove``
    audit entry of the same content, that entry counted as many decisions as the tombstone holds,
    and the copy is of a decision on that content."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='retention_tombstones'").fetchone():
        return [], []
    out, problems = [], []
    for stone_id, sha, seq, detail in conn.execute(
            "SELECT tombstone_id, sha256, audit_seq, detail FROM retention_tombstones ORDER BY tombstone_id"):
        try:
            records = (json.loads(detail).get("review_records") or {}).get("decisions") or []
        except (ValueError, AttributeError):
            continue
        records = [r for r in records if isinstance(r, dict)]
        if not records:
            continue
        entry = conn.execute("SELECT action, target, detail FROM audit WHERE seq = ?", (seq,)).fetchone()
        try:
            logged = json.loads(entry[2])["review_records"].get("decisions", 0) if entry else None
        except (ValueError, TypeError, KeyError, AttributeError):
            logged = None
        if entry is None or entry[0] != REMOVAL_ACTION or entry[1] != sha or logged != len(records):
            problems.append(f"retention tombstone {stone_id} holds {len(records)} decision(s) but is not backed by "
                            f"a retention removal of {sha} in the audit trail (entry {seq}) that archived as many")
            continue
        for r in records:
            own_seq = r.get("audit_seq")  # None in copies archived before migration 11
            if r.get("media_sha256") != sha or (own_seq is not None and not (isinstance(own_seq, int)
                                                                              and own_seq < seq)):
                problems.append(f"retention tombstone {stone_id} holds decision {r.get('decision_id')}, which its "
                                "removal cannot have archived (another content, or decided after the removal)")
            else:
                out.append({**r, "_removal_seq": seq})
    return out, problems


def check_bindings(conn: sqlite3.Connection) -> dict[str, Any]:
    """Every decision row against its entry, and every decision entry against a row (or an archived
    copy in a retention tombstone): ``{ok, decisions, entries, archived, legacy, problems, ...}``."""
    problems: list[dict[str, Any]] = []

    def problem(decision_id: Any, seq: Any, text: str) -> None:
        problems.append({"decision_id": decision_id, "audit_seq": seq, "problem": text})

    entries = {r["seq"]: dict(r) for r in conn.execute(
        "SELECT seq, ts_utc, actor, action, target, detail, prev_hash, entry_hash FROM audit WHERE action = ?",
        (ACTION,))}
    seq_of_id: dict[Any, list[int]] = {}
    for seq, e in entries.items():
        try:
            did = json.loads(e["detail"] or "{}").get("decision_id")
        except (ValueError, AttributeError):
            did = None
        seq_of_id.setdefault(did, []).append(seq)
    has_seq = "audit_seq" in _columns(conn, "decisions")
    claimed: dict[int, Any] = {}
    n_rows = legacy = 0
    for r in conn.execute("SELECT * FROM decisions ORDER BY decision_id"):
        n_rows += 1
        row = dict(r)
        seq = row.get("audit_seq") if has_seq else None
        if seq is None and not has_seq:
            seq = max(seq_of_id.get(row["decision_id"], [0])) or None
        entry = entries.get(seq) if seq is not None else None
        if entry is None and seq is not None:
            other = conn.execute("SELECT seq, ts_utc, actor, action, target, detail, prev_hash, entry_hash "
                                 "FROM audit WHERE seq = ?", (seq,)).fetchone()
            entry = dict(other) if other else None
            if entry is None:
                problem(row["decision_id"], seq, f"decision {row['decision_id']} names audit entry {seq}, "
                                                 "which does not exist")
                continue
        for text in compare(row, entry):
            problem(row["decision_id"], seq, text)
        if entry is not None and entry["action"] == ACTION:
            legacy += _legacy(entry)
            try:
                logged_id = json.loads(entry["detail"] or "{}").get("decision_id")
            except (ValueError, AttributeError):
                logged_id = None
            if logged_id != row["decision_id"]:
                problem(row["decision_id"], seq, f"decision {row['decision_id']}: its audit entry {seq} records "
                                                 f"decision {logged_id}")
            if seq in claimed:
                problem(row["decision_id"], seq, f"decisions {claimed[seq]} and {row['decision_id']} both claim "
                                                 f"audit entry {seq}")
            claimed[seq] = row["decision_id"]
    archived, stone_problems = _archived(conn)
    for text in stone_problems:
        problem(None, None, text)
    by_seq = {a["audit_seq"]: a for a in archived if a.get("audit_seq") is not None}
    by_id = {a.get("decision_id"): a for a in archived if a.get("audit_seq") is None}
    n_archived = 0
    for seq, entry in sorted(entries.items()):
        if seq in claimed:
            continue
        try:
            did = json.loads(entry["detail"] or "{}").get("decision_id")
        except (ValueError, AttributeError):
            did = None
        copy = by_seq.get(seq) or by_id.get(did)
        if copy is not None and copy["_removal_seq"] <= seq:
            copy = None  # a decision logged after the removal cannot be in its tombstone
        if copy is None:
            problem(did, seq, f"audit entry {seq} records decision {did}, but no decision row holds it "
                              "(deleted, and not archived by a retention removal)")
            continue
        n_archived += 1
        for text in compare(copy, entry, what="archived decision"):
            problem(did, seq, text)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='retention_pending'").fetchone():
        for (sha,) in conn.execute("SELECT sha256 FROM retention_pending"):
            problem(None, None, f"retention_pending holds {sha}: a removal left it behind, or someone used it to "
                                "get round the append-only trigger")
    return {"ok": not problems, "decisions": n_rows, "entries": len(entries), "archived": n_archived,
            "legacy": legacy, "problem_count": len(problems), "problems": problems[:MAX_PROBLEMS]}


def integrity(conn: sqlite3.Connection) -> dict[str, Any]:
    """The chain and every decision's binding: ``{ok, chain, bindings, summary}`` (for exports)."""
    chain = audit.chain_status(conn)
    bindings = check_bindings(conn)
    lines = []
    if not chain["ok"]:
        lines.append(f"audit chain broken at entry {chain['first_broken']}: {chain['problem']}")
    lines += [p["problem"] for p in bindings["problems"]]
    return {"ok": chain["ok"] and bindings["ok"], "chain": chain, "bindings": bindings,
            "summary": lines}
