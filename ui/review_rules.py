"""The rules a decision must pass before it is recorded, and what it changes afterwards.

* **Seeing first**: confirming or rejecting needs both pictures (query and candidate) revealed
  at least once by that reviewer. Checked here, on the server, against the audit trail's
  ``reveal`` entries (not against a button's state, which a browser controls).
* **Conflicts**: every earlier decision on the same pair (mode, query, query face, media, frame,
  face) is shown; a decision that contradicts a standing one (confirmed vs rejected) is refused
  unless the reviewer overrules it with a reason, which is kept in ``decision_overrules`` and in
  the decision's audit entry.
* **Afterwards**: the queue item is closed with its decision, and a rejected face pair whose
  query face is a face of the case becomes a cannot-link for clustering.

Bulk rejection of below-threshold results is the one decision made without seeing: the score
already says "no match", and making a reviewer look at every non-match would defeat the point of
blurring. It is recorded as such (``basis: below_threshold``) and adds no cannot-link.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ui.auth import User, can
from ui.decisions import Candidate, record_decision
from ui.queue import QueueItem, mark_done, workable
from vidpipe.people.store import add_constraint
from vidpipe.store import audit
from vidpipe.store.casedb import transaction
from vidpipe.store.decision_log import read_decisions
from vidpipe.store.queries.decisions import add_overrule, has_revealed, overruled_by
from vidpipe.store.queries.review import open_item_ids

OPPOSITE = {"confirmed": "rejected", "rejected": "confirmed"}


def revealed_by(conn: sqlite3.Connection, user: User, sha256: str) -> bool:
    """Whether ``user`` has ever revealed a picture of ``sha256`` (an audit ``reveal`` entry)."""
    return has_revealed(conn, user.name, sha256)


def unseen(conn: sqlite3.Connection, user: User, cand: Candidate) -> list[str]:
    """Which sides of the pair ``user`` has not revealed yet ("query", "candidate")."""
    return [side for side, sha in (("query", cand.query_sha256), ("candidate", cand.media_sha256))
            if not revealed_by(conn, user, sha)]


def pair_decisions(conn: sqlite3.Connection, cand: Candidate) -> list[dict[str, Any]]:
    """Every earlier decision on this pair, oldest first, read through the audit binding
    (``bound``/``integrity``), each with ``overruled_by`` (a decision id or None)."""
    rows = read_decisions(conn, "d.mode=? AND d.query_sha256=? AND d.query_face IS ? AND d.media_sha256=? "
                          "AND d.face_id IS ? AND d.video_time_s IS ?",
                          (cand.mode, cand.query_sha256, cand.query_face, cand.media_sha256, cand.face_id,
                           cand.video_time_s))
    overruled = overruled_by(conn) if rows else {}
    return [{**r, "overruled_by": overruled.get(r["decision_id"])} for r in rows]


def contradicted(earlier: list[dict[str, Any]], decision: str) -> list[dict[str, Any]]:
    """The standing (not overruled) earlier decisions that ``decision`` contradicts."""
    opposite = OPPOSITE.get(decision)
    return [d for d in earlier if d["decision"] == opposite and d["overruled_by"] is None]


def describe(earlier: list[dict[str, Any]]) -> list[str]:
    """One line per earlier decision: who, when, what (and whether it was overruled)."""
    out = []
    for d in earlier:
        line = f"#{d['decision_id']} {d['decision']} by {d['reviewer']} at {d['decided_utc']}"
        if d["overruled_by"] is not None:
            line += f" (overruled by #{d['overruled_by']})"
        if not d.get("bound", True):
            line += f" — {d['integrity']}"
        out.append(line)
    return out


def decide(conn: sqlite3.Connection, user: User, item: QueueItem | int, decision: str, reason: str,
           overrule_reason: str | None = None) -> tuple[int | None, str | None]:
    """Decide one queue item; ``(decision_id, None)`` or ``(None, why not)``.

    The item is re-read from the database: what is decided is what was queued, never what a
    browser sent back.
    """
    item_id = item if isinstance(item, int) else item.item_id
    # One write transaction from the check to the last write: two reviewers deciding one item at
    # the same moment cannot both find it open.
    with transaction(conn):
        current, error = workable(conn, user, item_id)
        if current is None:
            return None, error
        return _decide(conn, user, current.cand, decision, reason, overrule_reason, current)


def _decide(conn: sqlite3.Connection, user: User, cand: Candidate, decision: str, reason: str,
            overrule_reason: str | None, item: QueueItem | None) -> tuple[int | None, str | None]:
    if not can(user.role, "decide"):
        return None, f"role {user.role} may not record decisions"
    if decision in OPPOSITE:
        missing = unseen(conn, user, cand)
        if missing:
            return None, (f"reveal both pictures before deciding ({' and '.join(missing)} not revealed by you yet)")
    against = contradicted(pair_decisions(conn, cand), decision)
    overrule_reason = (overrule_reason or "").strip()
    if against and not overrule_reason:
        return None, ("this contradicts " + "; ".join(describe(against))
                      + ": tick overrule and give a reason to record it")
    extra: dict[str, Any] = {}
    if item is not None:
        extra["queue_item_id"] = item.item_id
    if against:
        extra["overrules"] = [d["decision_id"] for d in against]
        extra["overrule_reason"] = overrule_reason
    with transaction(conn):  # the decision, its overrules, the queue item and the cannot-link: all or nothing
        decision_id, error = record_decision(conn, user, cand, decision, reason, extra=extra or None)
        if error:
            return None, error
        for d in against:
            add_overrule(conn, decision_id, d["decision_id"], user.name, overrule_reason)
        if item is not None:
            mark_done(conn, user, item.item_id, decision_id)
            if decision == "rejected":
                _cannot_link(conn, user, item, decision_id, reason)
    return decision_id, None


def _cannot_link(conn: sqlite3.Connection, user: User, item: QueueItem, decision_id: int, reason: str) -> None:
    """A rejected face pair, both faces of the case: those two faces are not one person."""
    cand = item.cand
    if cand.mode != "face" or cand.face_id is None or item.query_face_id is None:
        return
    if int(cand.face_id) == int(item.query_face_id):
        return
    add_constraint(conn, item.query_face_id, cand.face_id, "cannot_link", user.name,
                   f"review decision {decision_id}: {reason}")
    audit.append(conn, user.name, "cannot_link", f"{item.query_face_id}|{cand.face_id}",
                 {"decision_id": decision_id, "queue_item_id": item.item_id})


def bulk_reject_below(conn: sqlite3.Connection, user: User, cands: list[Candidate],
                      reason: str) -> tuple[list[int], list[str], str | None]:
    """Reject every below-threshold candidate with one reason.

    Returns ``(decision ids, skipped lines, error)``. Candidates at or above the threshold, or
    without a threshold, are never touched; a pair with a standing confirm or reject is skipped
    (it needs a decision of its own, with an overrule where it contradicts).
    """
    if not can(user.role, "decide"):
        return [], [], f"role {user.role} may not record decisions"
    if not reason.strip():
        return [], [], "a reason is required"
    below = [c for c in cands if c.threshold is not None and c.score is not None and c.score < c.threshold]
    if not below:
        return [], [], "no result is below the threshold"
    open_by_key = open_item_ids(conn)
    ids, skipped = [], []
    for c in below:
        standing = [d for d in pair_decisions(conn, c)
                    if d["decision"] in OPPOSITE and d["overruled_by"] is None]
        if standing:
            skipped.append(f"rank {c.rank}: already {standing[-1]['decision']} (#{standing[-1]['decision_id']})")
            continue
        item_id = open_by_key.get(f"{c.mode}:{c.key}")
        extra = {"basis": "below_threshold", "bulk": len(below),
                 **({"queue_item_id": item_id} if item_id else {})}
        with transaction(conn):
            decision_id, error = record_decision(conn, user, c, "rejected", reason, extra=extra)
            if error:
                return ids, skipped, error
            if item_id:
                mark_done(conn, user, item_id, decision_id)
        ids.append(decision_id)
    audit.append(conn, user.name, "bulk_reject", cands[0].query_sha256 if cands else None,
                 {"decisions": ids, "skipped": len(skipped)})
    return ids, skipped, None
