"""Near-duplicate search: perceptual hashes of the query's 8 rotations and flips against the case.

PDQ (the query's 8 dihedral variants, minimum distance per media item) is the primary signal with
Meta's match distance 31; pHash (also dihedral) covers items without a usable PDQ hash.
score = 1 - distance / bits, in [0, 1]. A PDQ hash of quality < 50 (Meta) on either side only
counts as an exact match (distance 0); otherwise that item is ranked by pHash. Video keyframes are
hashed like stills, so a frame of a video can be the copy (`vidpipe.search.video.keyframe_hits`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from indexer.binary_index import codes_from_hex
from vidpipe.extract.hashers import PDQ_MATCH_DISTANCE, PDQ_MIN_QUALITY
from vidpipe.search.build import ensure_indexes
from vidpipe.search.media import media_info
from vidpipe.search.query_prep import prepare_query
from vidpipe.search.video import keyframe_hits

# pHash is a fallback signal: imagededup's PHash.find_duplicates default max_distance_threshold = 10 of 64 bits.
PHASH_MATCH_DISTANCE = 10


def search_near_dup(paths, conn, qpath, data, file_type, top_k) -> dict:
    """The contract's search object for ``--mode near-dup``."""
    # The decode ingest hashes (pixels as stored, no EXIF rotation), in the sandbox.
    prepared = prepare_query(data if isinstance(data, bytes) else Path(data), file_type, "near-dup")
    pdq_hexes, quality, phash_hexes = prepared.pdq, prepared.pdq_quality, prepared.phash
    handles = ensure_indexes(paths, conn, ("pdq", "phash"))
    usable_query = quality is None or quality >= PDQ_MIN_QUALITY
    candidates: set[int] = set()
    if usable_query:
        _, ids = handles["pdq"].index.search(codes_from_hex(pdq_hexes, 256), top_k)
        candidates.update(int(i) for i in ids.ravel() if i >= 0)
    _, ids = handles["phash"].index.search(codes_from_hex(phash_hexes, 64), top_k)
    candidates.update(int(i) for i in ids.ravel() if i >= 0)
    # Low-quality PDQ hashes are not indexed (Meta); an identical hash is still an exact match.
    marks = ",".join("?" * len(pdq_hexes))
    candidates.update(r[0] for r in conn.execute(
        f"SELECT m.rowid FROM signals s JOIN media m ON m.sha256 = s.sha256 WHERE s.signal = 'pdq' "
        f"AND s.quality < ? AND s.value IN ({marks})", (PDQ_MIN_QUALITY, *pdq_hexes)))
    scored = [_score_near_dup(row, pdq_hexes, phash_hexes, usable_query) for row in _signal_rows(conn, candidates)]
    scored = [s for s in scored if s]
    if usable_query:  # video keyframes are hashed like stills: a frame of a video can be the copy
        scored += [{"sha256": h["sha256"], "score": h["score"], "signal": "pdq", "distance": h["distance"],
                    "above": True, "distances": {"pdq": h["distance"]}, "low_quality": False,
                    "video_time_s": h["video_time_s"]} for h in keyframe_hits(conn, pdq_hexes, top_k)]
    scored = sorted(scored, key=lambda s: (-s["score"], s["signal"] != "pdq", s["sha256"],
                                           s.get("video_time_s") or 0))[:top_k]
    media = media_info(conn, [s["sha256"] for s in scored])
    results = [{"rank": rank, "score": round(s["score"], 6), "query_face": None,
                "media": {**media[s["sha256"]], "video_time_s": s.get("video_time_s")}, "box": None,
                "distance": s["distance"], "signal": s["signal"], "above_threshold": s["above"],
                "distances": s["distances"], "low_quality": s["low_quality"]} for rank, s in enumerate(scored, 1)]
    threshold = 1.0 - PDQ_MATCH_DISTANCE / 256
    return {"query": {"path": qpath, "mode": "near-dup", "faces": [],
                      "hashes": {"pdq": pdq_hexes[0], "pdq_quality": quality, "phash": phash_hexes[0]}},
            "threshold": threshold, "threshold_distance": PDQ_MATCH_DISTANCE,
            "threshold_source": {"calibration_id": None, "default": "Meta PDQ match distance <= 31 of 256 bits",
                                 "signal": "pdq", "distance": PDQ_MATCH_DISTANCE, "score": threshold,
                                 "phash_distance": PHASH_MATCH_DISTANCE, "far": None, "frr": None, "target": None},
            "results": results, "indexes": {name: h.describe() for name, h in handles.items()},
            **({"warnings": [f"query PDQ quality {quality} < {PDQ_MIN_QUALITY}: PDQ matches only exact copies; "
                             "ranked by pHash"]} if not usable_query else {})}


def _min_distance(query_hexes: list[str], value: str | None) -> int | None:
    if not value:
        return None
    v = int(value, 16)
    return min((int(q, 16) ^ v).bit_count() for q in query_hexes)


def _signal_rows(conn: sqlite3.Connection, rowids: set[int]) -> list[sqlite3.Row]:
    ids = sorted(rowids)
    rows = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows.extend(conn.execute(
            "SELECT m.sha256, p.value AS pdq, p.quality AS pdq_quality, h.value AS phash FROM media m "
            "LEFT JOIN signals p ON p.sha256 = m.sha256 AND p.signal = 'pdq' "
            "LEFT JOIN signals h ON h.sha256 = m.sha256 AND h.signal = 'phash' "
            f"WHERE m.rowid IN ({','.join('?' * len(chunk))})", chunk).fetchall())
    return rows


def _score_near_dup(row, pdq_hexes, phash_hexes, usable_query: bool) -> dict | None:
    d_pdq = _min_distance(pdq_hexes, row["pdq"])
    d_phash = _min_distance(phash_hexes, row["phash"])
    low = row["pdq_quality"] is not None and row["pdq_quality"] < PDQ_MIN_QUALITY
    base = {"sha256": row["sha256"], "distances": {"pdq": d_pdq, "phash": d_phash}, "low_quality": low}
    if d_pdq is not None and ((usable_query and not low) or d_pdq == 0):
        return {**base, "signal": "pdq", "distance": d_pdq, "score": 1.0 - d_pdq / 256,
                "above": d_pdq <= PDQ_MATCH_DISTANCE}
    if d_phash is not None:
        return {**base, "signal": "phash", "distance": d_phash, "score": 1.0 - d_phash / 64,
                "above": d_phash <= PHASH_MATCH_DISTANCE}
    return None
