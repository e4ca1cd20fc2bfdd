"""Video search: vPDQ video-to-video matching (Meta's rule) and keyframe hits for still queries.

Both brute-force over hashes held in the case database with numpy popcounts: a case with
100 000 keyframes is 3.2 MB of PDQ codes, a few milliseconds per query. The binary FAISS index
takes over when that stops being true (see indexer/binary_index.py).
"""

from __future__ import annotations

import io
import sqlite3

import numpy as np

from vidpipe.errors import UsageError, VidpipeError
from vidpipe.extract.hashers import PDQ_MATCH_DISTANCE, PDQ_MIN_QUALITY
from vidpipe.video.vpdq import (
    VPDQ_COMPARED_MATCH_THRESHOLD_PERCENT,
    VPDQ_QUERY_MATCH_THRESHOLD_PERCENT,
    VpdqFeature,
    match_vpdq,
)


def query_vpdq(data: bytes, file_type) -> list[VpdqFeature]:
    """vPDQ of a query video, decoded in memory with the demuxer its content names."""
    from vidpipe.pipeline.video_task import DEMUXERS
    from vidpipe.video import VideoOpenError, compute_vpdq, open_video

    demuxer = DEMUXERS.get(file_type.label)
    if file_type.kind != "video" or demuxer is None:
        raise UsageError(f"video mode needs a video query; the file is {file_type.label} ({file_type.kind})")
    try:
        with open_video(io.BytesIO(data), demuxer, None, threads=1) as stream:
            return compute_vpdq(stream).features
    except VideoOpenError as exc:
        raise VidpipeError(f"the query video could not be decoded: {exc}") from exc


def case_vpdq(conn: sqlite3.Connection) -> dict[str, list[VpdqFeature]]:
    out: dict[str, list[VpdqFeature]] = {}
    for r in conn.execute("SELECT sha256, frame_number, quality, pdq, time_s FROM vpdq ORDER BY sha256, frame_number"):
        out.setdefault(r["sha256"], []).append(VpdqFeature(r["frame_number"], r["quality"], r["pdq"], r["time_s"]))
    return out


def search_videos(conn: sqlite3.Connection, query: list[VpdqFeature], top_k: int) -> list[dict]:
    """Rank the case's videos by the share of the query's frames they match (Meta's matcher)."""
    scored = []
    for sha256, features in case_vpdq(conn).items():
        match = match_vpdq(query, features)
        if match.query_match_percent == 0 and match.compared_match_percent == 0:
            continue
        scored.append((match.query_match_percent / 100.0, match.compared_match_percent / 100.0, sha256, match))
    scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
    return [{"sha256": sha, "score": round(q, 6), "query_match_percent": round(m.query_match_percent, 2),
             "compared_match_percent": round(m.compared_match_percent, 2), "above_threshold": bool(m.is_match())}
            for q, _, sha, m in scored[:top_k]]


VIDEO_THRESHOLD = VPDQ_QUERY_MATCH_THRESHOLD_PERCENT / 100.0
VIDEO_THRESHOLD_SOURCE = {
    "calibration_id": None, "far": None, "frr": None, "target": None,
    "default": (f"Meta vPDQ: frames match at PDQ distance <= {PDQ_MATCH_DISTANCE} with quality >= {PDQ_MIN_QUALITY}; "
                f"videos match when >= {VPDQ_QUERY_MATCH_THRESHOLD_PERCENT:g}% of the query's frames and >= "
                f"{VPDQ_COMPARED_MATCH_THRESHOLD_PERCENT:g}% of the compared video's frames match"),
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
