"""The shared review queue (table ``review_queue``): candidates sent from a search, worked by reviewers.

The queue lives in the case database, not in a browser session: every user of the case sees the
same queue, and it survives a reload, a new login and a server restart. Analysts (anyone who may
search) send candidates; reviewers take the open items in score order (highest first). Each
change is written with its audit entry in one transaction.

A reviewer's *claim* marks the item they have open, so two reviewers are not handed the same
item; a claim lapses after ``CLAIM_TTL_S`` (a closed tab must not hold an item for ever).
A *skip* puts an item behind every item that reviewer has not skipped.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from ui.auth import User, can
from ui.decisions import Candidate
from vidpipe.store import audit
from vidpipe.store.casedb import transaction, utc_now
from vidpipe.store.queries import review as queue_rows
from vidpipe.store.queries.media import still_faces

CLAIM_TTL_S = 15 * 60  # as long as the idle logout: a claim outlives no session
MATCH_IOU = 0.5        # a query face box is a case face when their boxes overlap this much


@dataclass(frozen=True)
class QueueItem:
    """One row of the queue: the candidate, who sent it and when, and its state."""

    item_id: int
    cand: Candidate
    query_face_id: int | None
    sent_by: str
    sent_utc: str
    state: str
    claimed_by: str | None
    claimed_utc: str | None
    decision_id: int | None
    done_by: str | None
    done_utc: str | None


_CAND_FIELDS = [f.name for f in fields(Candidate)]


def _row_to_item(row: sqlite3.Row) -> QueueItem:
    values = {name: row[name] for name in _CAND_FIELDS if name not in ("query_box", "box", "above_threshold")}
    values["query_box"] = tuple(json.loads(row["query_box"])) if row["query_box"] else None
    values["box"] = tuple(json.loads(row["box"])) if row["box"] else None
    values["above_threshold"] = None if row["above_threshold"] is None else bool(row["above_threshold"])
    return QueueItem(row["item_id"], Candidate(**values), row["query_face_id"], row["sent_by"], row["sent_utc"],
                     row["state"], row["claimed_by"], row["claimed_utc"], row["decision_id"], row["done_by"],
                     row["done_utc"])


def _order_key(item: QueueItem) -> tuple:
    """Score order, highest first; items without a score last; ties by the order they were sent."""
    score = item.cand.score
    return (score is None, -(score or 0.0), item.item_id)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def query_face_id(conn: sqlite3.Connection, cand: Candidate, given: int | None = None) -> int | None:
    """The query face as a face of the case, or None.

    ``given`` is the search's own face id for the query face (when it reports one). Otherwise,
    when the query photo is itself in the case, its face whose box overlaps the query box most
    (IoU >= ``MATCH_IOU``) is the same face: same bytes, same detector.
    """
    if given is not None:
        return int(given)
    if cand.mode != "face" or cand.query_box is None:
        return None
    best, best_iou = None, MATCH_IOU
    for face_id, box in still_faces(conn, cand.query_sha256):
        overlap = _iou(tuple(cand.query_box), box)
        if overlap >= best_iou:
            best, best_iou = face_id, overlap
    return best


def enqueue(conn: sqlite3.Connection, user: User, cands: list[Candidate],
            query_face_ids: dict[int, int] | None = None) -> tuple[list[int], str | None]:
    """Send candidates to the queue; ``(new item ids, None)`` or ``([], why not)``.

    A candidate already open in the queue is not added twice; a decided one may be sent again
    (a second opinion: its earlier decisions are shown, and contradicting them needs an overrule). ``query_face_ids`` maps a
    query face index to a case face id when the search reported one.
    """
    if not can(user.role, "search"):
        return [], f"role {user.role} may not send candidates to review"
    if not cands:
        return [], None
    now, new = utc_now(), []
    with transaction(conn):
        for c in cands:
            qfid = query_face_id(conn, c, (query_face_ids or {}).get(c.query_face) if c.query_face is not None
                                 else None)
            values = {name: getattr(c, name) for name in queue_rows.QUEUE_COLUMNS if name in _CAND_FIELDS}
            values.update(item_key=f"{c.mode}:{c.key}", query_face_id=qfid,
                          query_box=json.dumps(list(c.query_box)) if c.query_box else None,
                          box=json.dumps(list(c.box)) if c.box else None,
                          above_threshold=None if c.above_threshold is None else int(c.above_threshold),
                          sent_by=user.name, sent_utc=now)
            item_id = queue_rows.insert_queue_item(conn, values)
            if item_id is not None:
                new.append(item_id)
        if new:
            audit.append(conn, user.name, "queue_add", cands[0].query_sha256,
                         {"items": new, "mode": cands[0].mode, "offered": len(cands)})
    return new, None


def get(conn: sqlite3.Connection, item_id: int) -> QueueItem | None:
    """The queue item ``item_id``, or None."""
    row = queue_rows.queue_row(conn, item_id)
    return _row_to_item(row) if row else None


def queued_keys(conn: sqlite3.Connection) -> set[str]:
    """The ``mode:candidate key`` of every open item (to mark search results already waiting)."""
    return set(queue_rows.open_item_ids(conn))


def _user_order(conn: sqlite3.Connection, user: User | None):
    """The sort key of ``user``'s order: their own skips last, then score order."""
    skipped = set()
    if user is not None:
        skipped = queue_rows.skipped_item_ids(conn, user.name)
    return lambda it: (it.item_id in skipped, *_order_key(it))


def open_items(conn: sqlite3.Connection, user: User | None = None) -> list[QueueItem]:
    """The open items in the order ``user`` works them: score order, their own skips last."""
    items = [_row_to_item(r) for r in queue_rows.open_queue_rows(conn)]
    return sorted(items, key=_user_order(conn, user))


def _claim_live(item: QueueItem, now: datetime) -> bool:
    if not item.claimed_by or not item.claimed_utc:
        return False
    when = datetime.fromisoformat(item.claimed_utc.replace("Z", "+00:00"))
    return now - when < timedelta(seconds=CLAIM_TTL_S)


def held_by_other(item: QueueItem, user: User) -> str | None:
    """The other reviewer who has this item open now, or None."""
    if item.claimed_by and item.claimed_by != user.name and _claim_live(item, datetime.now(UTC)):
        return item.claimed_by
    return None


def workable(conn: sqlite3.Connection, user: User, item_id: int) -> tuple[QueueItem | None, str | None]:
    """The item when it is open and no other reviewer holds it: ``(item, None)`` or ``(None, why not)``.
    Call it inside the write transaction that acts on the item, so the answer still holds then."""
    item = get(conn, item_id)
    if item is None or item.state != "open":
        return None, "this item is no longer open (someone decided it already)"
    other = held_by_other(item, user)
    if other:
        return None, f"{other} has this item open"
    return item, None


def claim(conn: sqlite3.Connection, user: User, item_id: int) -> tuple[QueueItem | None, str | None]:
    """Open an item for ``user`` (releasing their other claims); ``(item, None)`` or ``(None, why not)``."""
    if not can(user.role, "decide"):
        return None, f"role {user.role} may not review"
    with transaction(conn):
        item, error = workable(conn, user, item_id)
        if item is None:
            return None, error
        if item.claimed_by != user.name:
            audit.append(conn, user.name, "queue_claim", item.cand.media_sha256, {"item_id": item_id})
        queue_rows.set_claim(conn, item_id, user.name)  # and releases the reviewer's other claims
    return get(conn, item_id), None


def next_item(conn: sqlite3.Connection, user: User, after: int | None = None) -> QueueItem | None:
    """The item ``user`` should open next, claimed for them; None when nothing is left for them.

    Without ``after``: the item they already hold, else the first in their order. With ``after``
    (the item just decided or skipped): the first open item that comes after it in their order,
    wrapping round to the start, so deciding item 3 opens item 4, not item 1.
    """
    items = [it for it in open_items(conn, user) if not held_by_other(it, user)]
    if not items:
        return None
    if after is None:
        mine = [it for it in items if it.claimed_by == user.name]
        pick = mine[0] if mine else items[0]
    else:
        pick = items[0]
        ref = get(conn, after)
        if ref is not None:
            order = _user_order(conn, user)
            later = [it for it in items if it.item_id != after and order(it) > order(ref)]
            pick = later[0] if later else pick
    claimed, _ = claim(conn, user, pick.item_id)
    return claimed


def skip(conn: sqlite3.Connection, user: User, item_id: int) -> QueueItem | None:
    """Put the item behind the others for ``user``, release it, and return the next item to open."""
    if not can(user.role, "decide"):
        return None
    with transaction(conn):
        queue_rows.record_skip(conn, item_id, user.name)
        audit.append(conn, user.name, "queue_skip", None, {"item_id": item_id})
    return next_item(conn, user, after=item_id)


def mark_done(conn: sqlite3.Connection, user: User, item_id: int, decision_id: int) -> None:
    """Close an item with the decision that settled it (inside the caller's transaction if any)."""
    with transaction(conn):
        queue_rows.close_queue_item(conn, item_id, decision_id, user.name)


def summary_rows(items: list[QueueItem], current: int | None = None) -> list[dict[str, Any]]:
    """Rows for the queue table: position, score, who sent it and when, who has it open."""
    out = []
    for pos, it in enumerate(items, 1):
        c = it.cand
        out.append({"#": pos, "open": "▶" if it.item_id == current else "", "score": c.score, "mode": c.mode,
                    "file": c.media_path.rsplit("/", 1)[-1], "query face": c.query_face, "sent by": it.sent_by,
                    "sent": it.sent_utc, "open by": it.claimed_by or ""})
    return out
