"""Video search: video-to-video matching (TMK level-1 family similarity, Meta's vPDQ rule beside
it) and keyframe hits for still queries.

A video query is scored against every case video two ways, from one decode of the query:
- ``score`` = TMK level-1 (cosine of average PDQF features, `vidpipe.video.tmk`): robust to bars,
  logos, colour changes and frame-phase; matches at >= TMK_LEVEL1_THRESHOLD.
- ``vpdq_match``: Meta's strict vPDQ rule (frames within 31 bits, >= 80 % both ways), the verdict
  that interoperates with vPDQ hash lists; its two percentages are reported.
``above_threshold`` is true when either says match. A video ingested before the TMK signature
existed is scored by its vPDQ query share instead (``score_signal`` says which).

Both brute-force over hashes held in the case database with numpy popcounts: a case with
100 000 keyframes is 3.2 MB of PDQ codes, a few milliseconds per query. The binary FAISS index
takes over when that stops being true (see indexer/binary_index.py).

Video keyframes also answer still queries: `keyframe_hits` (used by near-dup search).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from vidpipe.extract.hashers import PDQ_MATCH_DISTANCE, PDQ_MIN_QUALITY
from vidpipe.search.media import media_info
from vidpipe.search.query_prep import prepare_query
from vidpipe.video.tmk import SIGNAL, TMK_LEVEL1_THRESHOLD, from_hex, level1
from vidpipe.video.vpdq import (
    VPDQ_COMPARED_MATCH_THRESHOLD_PERCENT,
    VPDQ_QUERY_MATCH_THRESHOLD_PERCENT,
    VpdqFeature,
    match_vpdq,
)


def search_video(conn, qpath, data, file_type, top_k) -> dict:
    """The contract's search object for ``--mode video``."""
    query, query_tmk = query_signatures(data, file_type)
    hits = search_videos(conn, query, top_k, query_tmk)
    media = media_info(conn, [h["sha256"] for h in hits])
    results = [{"rank": rank, "score": h["score"], "query_face": None,
                "media": {**media[h["sha256"]], "video_time_s": None}, "box": None,
                "score_signal": h["score_signal"], "vpdq_match": h["vpdq_match"],
                "query_match_percent": h["query_match_percent"],
                "compared_match_percent": h["compared_match_percent"], "above_threshold": h["above_threshold"]}
               for rank, h in enumerate(hits, 1)]
    return {"query": {"path": qpath, "mode": "video", "faces": [], "vpdq_frames": len(query)},
            "threshold": VIDEO_THRESHOLD, "threshold_source": VIDEO_THRESHOLD_SOURCE, "results": results}


def query_vpdq(data: bytes | Path, file_type) -> list[VpdqFeature]:
    """vPDQ of a query video (its bytes or its path), decoded in the sandbox."""
    return query_signatures(data, file_type)[0]


def query_signatures(data: bytes | Path | str, file_type) -> tuple[list[VpdqFeature], np.ndarray | None]:
    """(vPDQ features, TMK level-1 feature) of a query video, from one decode in a sandboxed worker
    with ingest's limits and at most ``query_prep.QUERY_MAX_FRAMES`` frames (vidpipe.search.query_prep)."""
    prepared = prepare_query(data if isinstance(data, bytes) else Path(data), file_type, "video")
    return prepared.vpdq, prepared.tmk


def case_vpdq(conn: sqlite3.Connection) -> dict[str, list[VpdqFeature]]:
    out: dict[str, list[VpdqFeature]] = {}
    for r in conn.execute("SELECT sha256, frame_number, quality, pdq, time_s FROM vpdq ORDER BY sha256, frame_number"):
        out.setdefault(r["sha256"], []).append(VpdqFeature(r["frame_number"], r["quality"], r["pdq"], r["time_s"]))
    return out


def case_tmk(conn: sqlite3.Connection) -> dict[str, np.ndarray]:
    return {r["sha256"]: from_hex(r["value"]) for r in conn.execute(
        "SELECT sha256, value FROM signals WHERE signal = ?", (SIGNAL,))}


def search_videos(conn: sqlite3.Connection, query: list[VpdqFeature], top_k: int,
                  query_tmk: np.ndarray | None = None) -> list[dict]:
    """Rank the case's videos by TMK level-1 similarity (vPDQ query share where a video has no TMK
    signature); every result carries Meta's vPDQ verdict and percentages too."""
    tmk = case_tmk(conn) if query_tmk is not None else {}
    scored = []
    for sha256, features in case_vpdq(conn).items():
        match = match_vpdq(query, features)
        if sha256 in tmk:
            score, signal = level1(query_tmk, tmk[sha256]), "tmk_l1"
            above = score >= TMK_LEVEL1_THRESHOLD or match.is_match()
        else:
            if match.query_match_percent == 0 and match.compared_match_percent == 0:
                continue
            score, signal, above = match.query_match_percent / 100.0, "vpdq", match.is_match()
        scored.append((score, match.compared_match_percent, sha256, match, signal, above))
    scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
    return [{"sha256": sha, "score": round(score, 6), "score_signal": signal,
             "query_match_percent": round(m.query_match_percent, 2),
             "compared_match_percent": round(m.compared_match_percent, 2), "vpdq_match": bool(m.is_match()),
             "above_threshold": bool(above)}
            for score, _, sha, m, signal, above in scored[:top_k]]


VIDEO_THRESHOLD = TMK_LEVEL1_THRESHOLD
VIDEO_THRESHOLD_SOURCE = {
    "calibration_id": None, "far": None, "frr": None, "target": "no cross-family match on ThreatExchange's clips",
    "default": (f"TMK level-1 (cosine of average PDQF features) >= {VIDEO_THRESHOLD:g}: the middle of the gap between "
                "same-family (>= 0.42) and cross-family (<= 0.20) pairs of ThreatExchange's 14 sample clips; "
                f"or Meta's vPDQ rule: frames match at PDQ distance <= {PDQ_MATCH_DISTANCE} with quality >= "
                f"{PDQ_MIN_QUALITY}, videos when >= {VPDQ_QUERY_MATCH_THRESHOLD_PERCENT:g}% of the query's and >= "
                f"{VPDQ_COMPARED_MATCH_THRESHOLD_PERCENT:g}% of the compared video's frames match"),
    "vpdq_query_percent": VPDQ_QUERY_MATCH_THRESHOLD_PERCENT,
    "vpdq_compared_percent": VPDQ_COMPARED_MATCH_THRESHOLD_PERCENT,
}


def keyframe_hits(conn: sqlite3.Connection, pdq_hexes: list[str], limit: int) -> list[dict]:
    """Keyframes within the PDQ match distance of any of the query's dihedral hashes."""
    rows = conn.execute("SELECT sha256, time_s, pdq, pdq_quality FROM frames WHERE pdq IS NOT NULL "
                        "AND pdq_quality >= ?", (PDQ_MIN_QUALITY,)).fetchall()
    if not rows or not pdq_hexes:
        return []
    codes = np.frombuffer(b"".join(bytes.fromhex(r["pdq"]) for r in rows), dtype=np.uint8).reshape(-1, 32)
    queries = np.frombuffer(b"".join(bytes.fromhex(h) for h in pdq_hexes), dtype=np.uint8).reshape(-1, 32)
    dist = np.bitwise_count(queries[:, None, :] ^ codes[None, :, :]).sum(axis=2).min(axis=0)
    hits = [(int(d), rows[i]["sha256"], float(rows[i]["time_s"])) for i, d in enumerate(dist)
            if d <= PDQ_MATCH_DISTANCE]
    hits.sort(key=lambda h: (h[0], h[1], h[2]))
    return [{"sha256": sha, "video_time_s": round(t, 3), "distance": d, "score": round(1.0 - d / 256, 6)}
            for d, sha, t in hits[:limit]]
