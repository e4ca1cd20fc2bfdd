"""Candidates from a search, and reviewers' decisions on them (table ``decisions``).

A decision and its audit entry are written in one transaction: there is never a decision
without its entry in the chain, nor an entry for a decision that was rolled back. The entry holds
every field of the decision, and decisions are read back through
`vidpipe.store.decision_log.read_decisions`, which checks each row against its entry.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from ui.auth import User, can
from vidpipe.store import decision_log
from vidpipe.store.casedb import transaction, utc_now

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
                    reason: str, *, extra: dict[str, Any] | None = None) -> tuple[int | None, str | None]:
    """Store a decision with its audit entry; ``(decision_id, None)`` or ``(None, why not)``.

    ``extra`` (e.g. ``{"overrules": 12, "overrule_reason": "...", "queue_item_id": 7}``) is stored
    in the decision's audit entry under ``"extra"`` and is bound to the decision like its other fields.
    """
    if not can(user.role, "decide"):
        return None, f"role {user.role} may not record decisions"
    if decision not in DECISIONS:
        return None, f"choose a decision: {', '.join(DECISIONS)}"
    reason = reason.strip()
    if not reason:
        return None, "a reason is required"
    if len(reason) > MAX_REASON_CHARS:
        return None, f"the reason is longer than {MAX_REASON_CHARS} characters"
    with transaction(conn):  # joins the caller's transaction (e.g. closing a queue item) if one is open
        decision_id, _seq = decision_log.append_decision(conn, {
            "query_sha256": cand.query_sha256, "query_face": cand.query_face, "mode": cand.mode,
            "media_sha256": cand.media_sha256, "face_id": cand.face_id, "video_time_s": cand.video_time_s,
            "score": cand.score, "threshold": cand.threshold, "decision": decision, "reason": reason,
            "reviewer": user.name, "decided_utc": utc_now()}, extra)
    return decision_id, None


def decisions_for_media(conn: sqlite3.Connection, sha256: str) -> list[dict[str, Any]]:
    """Earlier decisions on one media item, newest first, each checked against its audit entry
    (``bound``/``integrity``; ``extra`` comes from the entry)."""
    keep = ("decision_id", "decision", "reason", "reviewer", "decided_utc", "mode", "score", "threshold",
            "query_sha256", "query_face", "face_id", "video_time_s", "audit_seq", "extra", "bound", "integrity")
    return [{k: d[k] for k in keep} for d in decision_log.read_decisions(
        conn, "d.media_sha256 = ?", (sha256,), order="d.decision_id DESC")]


def candidate_dict(cand: Candidate) -> dict[str, Any]:
    """A plain dict (for session state and JSON)."""
    return asdict(cand)
