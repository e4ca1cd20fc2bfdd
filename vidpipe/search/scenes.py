"""Scene (room) search: masked global vectors, then geometric verification of the best candidates.

The query is prepared exactly as ingest prepares evidence (the model stage's decode and downscale),
its people are found with the case's face detector and masked out (body boxes), and its room
vector is compared with every image and video keyframe in the case's scene index. The top
``RERANK_TOP_K`` candidates by cosine are then verified with local features (RootSIFT + mutual
ratio test + MAGSAC++, people masked out on both sides) and their score becomes
``geometry.combine(cosine, inliers)``: geometry adds evidence, it never replaces the global score
(on wide-baseline indoor pairs, re-ranking by inliers alone lowered recall@1 from 21/30 to 8/30).

Each result carries the cosine, the inlier count, up to ``MAX_MATCHES_SHOWN`` matched point pairs
in both images' upright full-resolution pixels (why the rooms match, for the reviewer), the
place name when the candidate is a labelled reference photo, and whether it passes the
threshold. Candidate pixels are decoded from the evidence in sandboxed worker processes (time
and memory limits), never in the search process: evidence bytes are untrusted.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidpipe.decode.image import decode_image
from vidpipe.decode.model_input import from_decoded
from vidpipe.errors import MissingDependencyError
from vidpipe.extract.scenes.effnet import SCENE_MATCH_THRESHOLD
from vidpipe.extract.scenes.geometry import MAX_SIDE, METHOD, combine, extract_features, match_features
from vidpipe.extract.scenes.masking import body_boxes
from vidpipe.models.registry import ModelConfig, load_case_models
from vidpipe.pipeline.sandbox import SandboxLimits, SandboxPool, TaskFailure
from vidpipe.search.build import ensure_indexes, face_model_keys
from vidpipe.search.media import media_info, rows_by_id
from vidpipe.search.query_prep import prepare_query
from vidpipe.sources.base import ItemRef
from vidpipe.sources.limits import ArchiveLimits
from vidpipe.sources.opener import open_item, read_capped
from vidpipe.store.queries.paths import first_source
from vidpipe.video.frame_at import frame_at

# Candidates verified geometrically per query (geometry.RERANK_TOP_K: 5 and 10 gave the same recall).
RERANK_TOP_K = 10
# Matched point pairs returned per result for display (the full count is in `inliers`).
MAX_MATCHES_SHOWN = 60
# Per candidate: reading, decoding and SIFT of one image or video frame.
VERIFY_TIMEOUT_S = 60.0
VERIFY_WORKER_MEMORY = 2 * 1024**3
READ_CAP_BYTES = 512 * 1024**2


@dataclass
class SceneModels:
    """A loaded face detector (for the masks) and scene embedder, and the embedder's model_key."""

    detector: object
    embedder: object
    model_key: str


def load_scene_models(device: str | None = None) -> SceneModels:
    """The default detector and scene embedder, through the one loader of a case's models
    (`vidpipe.models.registry.load_case_models`; face embedder off). MissingDependencyError (exit 3)
    when weights are missing."""
    models = load_case_models(ModelConfig(embedder=None), device)
    return SceneModels(models.detector, models.scene_embedder, models.scene_key)


def scene_threshold() -> tuple[float, dict]:
    """The scene match threshold and where it comes from (there is no scene calibration command yet)."""
    return SCENE_MATCH_THRESHOLD, {
        "calibration_id": None, "far": None, "frr": None, "target": "0 false accepts on the evaluation set",
        "default": "bench.eval_scenes on ../shared/data/scenes + sample_media/rooms (30 images, 435 pairs, "
                   "2026-11-29): smallest 0.01 step above every different-place score (max 0.8294); "
                   "score = cosine + geometry bonus",
        "score": "cosine of masked room vectors, plus up to 0.5 for geometric inliers above 15"}


def query_scene(data, file_type, models: SceneModels) -> dict:
    """The query (its bytes or its path) as ingest sees it: {"pixels", "scale" (pixels / full width),
    "masked" (body boxes, pixel coordinates), "vector"}. Decoding and downscaling run in the sandbox
    (vidpipe.search.query_prep); the models see only the bounded array that comes back."""
    prepared = prepare_query(data if isinstance(data, bytes) else Path(data), file_type, "scene")
    pixels, scale = prepared.pixels, prepared.scale
    faces = models.detector.detect(pixels)
    masked = body_boxes([f.box for f in faces], pixels.shape[1], pixels.shape[0])
    vector = models.embedder.embed_batch([pixels], [masked])[0]
    return {"pixels": pixels, "scale": scale, "masked": masked, "vector": np.asarray(vector, np.float32)}


def search_scenes(paths, conn: sqlite3.Connection, qpath: str, data: bytes, file_type, top_k: int,
                  models: SceneModels, rerank: bool = True) -> dict:
    """The contract's search object for ``--mode scene``."""
    counts = face_model_keys(conn, "scenes")
    if counts and models.model_key not in counts:
        raise MissingDependencyError(
            f"the case's scene vectors were made with {', '.join(counts)}, but this installation loads "
            f"{models.model_key}; install the scene model the case was ingested with")
    handle = ensure_indexes(paths, conn, ("scene",), face_model_key=None)["scene"]
    threshold, source = scene_threshold()
    t0 = time.monotonic()
    query = query_scene(data, file_type, models)
    candidates = _global_candidates(conn, handle.index, query["vector"], max(top_k, RERANK_TOP_K))
    t_global = time.monotonic()
    verified = _verify(conn, query, candidates[:RERANK_TOP_K]) if rerank and candidates else {}
    t_verify = time.monotonic()
    for c in candidates:
        geo = verified.get(c["scene_id"])
        c["inliers"] = geo["inliers"] if geo and "inliers" in geo else None
        c["score"] = _fused(c["cosine"], c["inliers"])
        c["geometry"] = geo
    candidates.sort(key=lambda c: (-c["score"], -c["cosine"], c["scene_id"]))
    hits = candidates[:top_k]
    media = media_info(conn, [h["sha256"] for h in hits])
    places = _places(conn, [h["sha256"] for h in hits])
    inv = 1.0 / query["scale"]
    results = []
    for rank, h in enumerate(hits, 1):
        geo = h["geometry"] or {}
        results.append({
            "rank": rank, "score": round(h["score"], 6), "query_face": None,
            "media": {**media.get(h["sha256"], {"sha256": h["sha256"], "path": None, "kind": None}),
                      "video_time_s": h["video_time_s"]},
            "box": None, "scene_id": h["scene_id"], "cosine": round(h["cosine"], 6), "inliers": h["inliers"],
            "verified": h["geometry"] is not None and "inliers" in geo,
            "matches": [[round(a[0] * inv, 1), round(a[1] * inv, 1), b[0], b[1]]
                        for a, b in geo.get("matches", [])[:MAX_MATCHES_SHOWN]],
            "verify_error": geo.get("error"),
            "place": places.get(h["sha256"]),
            "above_threshold": bool(h["score"] >= threshold)})
    out = {"query": {"path": qpath, "mode": "scene", "faces": [],
                     "masked": [[round(v * inv, 1) for v in b] for b in query["masked"]]},
           "threshold": threshold, "threshold_source": source, "results": results,
           "rerank": {"method": METHOD, "top_k": RERANK_TOP_K if rerank else 0,
                      "global_ms": round((t_global - t0) * 1000, 1), "verify_ms": round((t_verify - t_global) * 1000, 1)},
           "indexes": {"scene": handle.describe()}}
    if not counts:
        out["warnings"] = ["the case holds no scene vectors (ingested with --no-scenes?)"]
    return out


def _fused(cosine: float, inliers: int | None) -> float:
    return combine(cosine, inliers) if inliers is not None else float(cosine)


def _global_candidates(conn: sqlite3.Connection, index, vector: np.ndarray, n: int) -> list[dict]:
    """The n best scene rows by cosine (one row per image or keyframe)."""
    k = min(len(index), n)
    if k == 0:
        return []
    scores, ids = index.search(vector[None, :], k)
    rows = rows_by_id(conn, "SELECT scene_id, sha256, video_time_s, masked FROM scenes", "scene_id",
                      [int(i) for i in ids[0] if i >= 0])
    out = []
    for score, scene_id in zip(scores[0], ids[0]):
        row = rows.get(int(scene_id))
        if row is not None:
            out.append({"scene_id": row["scene_id"], "sha256": row["sha256"], "video_time_s": row["video_time_s"],
                        "masked": json.loads(row["masked"] or "[]"), "cosine": float(score)})
    return out


def _places(conn: sqlite3.Connection, sha256s: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for sha in sorted(set(sha256s)):
        rows = conn.execute("SELECT place, detail, label_file FROM places WHERE sha256=? ORDER BY place",
                            (sha,)).fetchall()
        if rows:
            out[sha] = {"name": rows[0]["place"], "detail": json.loads(rows[0]["detail"] or "{}"),
                        "label_file": rows[0]["label_file"], "others": [r["place"] for r in rows[1:]]}
    return out


# -------------------------------------------------------------------- verification (sandboxed workers)
@dataclass(frozen=True)
class CandidateTask:
    """Where a candidate's pixels are and what to leave out of its keypoints."""

    sha256: str
    ref: bytes
    label: str
    kind: str
    video_time_s: float | None
    masked: tuple[tuple[float, float, float, float], ...]   # full-resolution upright pixels


def candidate_features(task: CandidateTask):
    """Worker: read (hash-checked), decode upright, and extract RootSIFT features of one candidate."""
    with open_item(ItemRef.from_blob(task.ref), ArchiveLimits()) as stream:
        data = read_capped(stream, READ_CAP_BYTES)
    if hashlib.sha256(data).hexdigest() != task.sha256:
        raise ValueError("the evidence file changed since ingest")
    if task.kind == "video":
        rgb = np.asarray(frame_at(data, task.video_time_s or 0.0), np.uint8)
        scale = 1.0
    else:  # the model-input recipe at SIFT's size: upright, not downscaled past the DCT reduction
        prepared = from_decoded(decode_image(data, task.label, min_side=MAX_SIDE), max_side=None)
        rgb, scale = prepared.pixels, prepared.scale
    mask = [tuple(v * scale for v in b) for b in task.masked]
    features = extract_features(rgb, mask)
    # Points back to full-resolution upright pixels, like the stored boxes.
    features.points = features.points / scale
    features.scale = features.scale * scale
    return features


def _verify(conn: sqlite3.Connection, query: dict, candidates: list[dict]) -> dict[int, dict]:
    """scene_id -> match_features result (or {"error": reason}) for each candidate."""
    query_features = extract_features(query["pixels"], query["masked"])
    tasks = {}
    for c in candidates:
        row = first_source(conn, c["sha256"])
        if row is not None:
            tasks[c["scene_id"]] = CandidateTask(c["sha256"], bytes(row["ref"]), row["label"], row["kind"],
                                                 c["video_time_s"], tuple(tuple(b) for b in c["masked"]))
    out: dict[int, dict] = {c["scene_id"]: {"error": "evidence_not_found"} for c in candidates
                            if c["scene_id"] not in tasks}
    if not tasks:
        return out
    limits = SandboxLimits(memory_bytes=VERIFY_WORKER_MEMORY, base_timeout_s=VERIFY_TIMEOUT_S)
    with SandboxPool({"scene_features": candidate_features}, min(2, len(tasks)), limits) as pool:
        for scene_id, task in tasks.items():
            pool.submit(scene_id, "scene_features", task)
        while pool.pending:
            for scene_id, result in pool.results():
                if isinstance(result, TaskFailure):
                    out[scene_id] = {"error": result.reason}
                elif isinstance(result, BaseException):
                    out[scene_id] = {"error": f"{type(result).__name__}: {result}"[:200]}
                else:
                    out[scene_id] = match_features(query_features, result)
    return out


def describe_matches(result: dict[str, Any]) -> str:
    """One line for the command-line table: cosine, inliers, place."""
    parts = [f"cos={result['cosine']:.3f}"]
    if result.get("inliers") is not None:
        parts.append(f"inliers={result['inliers']}")
    if result.get("place"):
        parts.append(f"place={result['place']['name']}")
    return " ".join(parts)
