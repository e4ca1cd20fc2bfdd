"""Candidates from a search, and reviewers' decisions on them (table ``decisions``).

A decision and its audit entry are written in one transaction: there is never a decision
without its entry in the chain, nor an entry for a decision that was rolled back.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from ui.auth import User, can
from vidpipe.store import audit
from vidpipe.store.casedb import utc_now

DECISIONS = ("confirmed", "rejected", "unsure")
MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class Candidate:
    """One search result waiting for a reviewer: the query side and the candidate side."""

    query_sha256: str
    query_path: str
    query_label: str
    query_kind: str
    mode: str
    query_face: int | None
    query_box: tuple[float, ...] | None
    media_sha256: str
    media_path: str
    kind: str
    video_time_s: float | None
    box: tuple[float, ...] | None
    face_id: int | None
    score: float | None
    threshold: float | None
    rank: int
    above_threshold: bool | None

    @property
    def key(self) -> str:
        """Identifies the candidate within a queue (same media, frame, face and query face)."""
        return f"{self.query_sha256}:{self.query_face}:{self.media_sha256}:{self.video_time_s}:{self.face_id}"


def candidates_from_search(result: dict[str, Any], query: dict[str, Any]) -> list[Candidate]:
    """Turn the search contract's JSON into candidates; ``query`` holds sha256/path/label/kind."""
    faces = (result.get("query") or {}).get("faces") or []
    threshold = result.get("threshold")
    out = []
    for r in result.get("results") or []:
        qf = r.get("query_face")
        qbox = faces[qf]["box"] if isinstance(qf, int) and 0 <= qf < len(faces) else None
        media = r.get("media") or {}
        above = r.get("above_threshold")
        if above is None and threshold is not None and r.get("score") is not None:
            above = r["score"] >= threshold
        out.append(Candidate(
            query_sha256=query["sha256"], query_path=str(query["path"]), query_label=query["label"],
            query_kind=query["kind"], mode=(result.get("query") or {}).get("mode") or query.get("mode", ""),
            query_face=qf, query_box=tuple(qbox) if qbox else None, media_sha256=media["sha256"],
            media_path=media.get("path") or "", kind=media.get("kind") or "image",
            video_time_s=media.get("video_time_s"), box=tuple(r["box"]) if r.get("box") else None,
            face_id=r.get("face_id"), score=r.get("score"), threshold=threshold, rank=int(r.get("rank") or 0),
            above_threshold=above))
    return out


def record_decision(conn: sqlite3.Connection, user: User, cand: Candidate, decision: str,
                    reason: str) -> tuple[int | None, str | None]:
    """Store a decision with its audit entry; ``(decision_id, None)`` or ``(None, why not)``."""
    if not can(user.role, "decide"):
        return None, f"role {user.role} may not record decisions"
    if decision not in DECISIONS:
        return None, f"choose a decision: {', '.join(DECISIONS)}"
    reason = reason.strip()
    if not reason:
        return None, "a reason is required"
    if len(reason) > MAX_REASON_CHARS:
        return None, f"the reason is longer than {MAX_REASON_CHARS} characters"
    conn.execute("BEGIN IMMEDIATE")
    try:
        cur = conn.execute(
            "INSERT INTO decisions(query_sha256, query_face, mode, media_sha256, face_id, video_time_s, score, "
            "threshold, decision, reason, reviewer, decided_utc) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (cand.query_sha256, cand.query_face, cand.mode, cand.media_sha256, cand.face_id, cand.video_time_s,
             cand.score, cand.threshold, decision, reason, user.name, utc_now()))
        decision_id = int(cur.lastrowid)
        audit.append(conn, user.name, "decision", cand.media_sha256, {
            "decision_id": decision_id, "decision": decision, "reason": reason, "mode": cand.mode,
            "query_sha256": cand.query_sha256, "query_face": cand.query_face, "face_id": cand.face_id,
            "video_time_s": cand.video_time_s, "score": cand.score, "threshold": cand.threshold})
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return decision_id, None


def decisions_for_media(conn: sqlite3.Connection, sha256: str) -> list[dict[str, Any]]:
    """Earlier decisions on one media item, newest first."""
    return [dict(r) for r in conn.execute(
        "SELECT decision_id, decision, reason, reviewer, decided_utc, mode, score, threshold, query_sha256 "
        "FROM decisions WHERE media_sha256=? ORDER BY decision_id DESC", (sha256,))]


def candidate_dict(cand: Candidate) -> dict[str, Any]:
    """A plain dict (for session state and JSON)."""
    return asdict(cand)
