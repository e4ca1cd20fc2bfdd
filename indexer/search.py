"""Query processing shared by `vidpipe search` and the UI: one function, the contract's JSON object.

Face mode: the query is decoded, oriented and downscaled exactly as ingest prepares evidence
(`decode_image(min_side=FACE_DECODE_MIN_SIDE)`, EXIF orientation, `make_face_input`), every face
is detected and embedded with the case's embedder, and each query face is searched on its own.
A media item appears once per query face (its best-matching face), except that different frames
of one video are separate results. Scores are cosine similarities; the threshold is the active
calibration for the embedder, else the measured default below, and is always reported with its
source and error rates.

Scene mode: see `indexer.scene_search` (masked room vectors, geometric verification of the best
candidates, place names of labelled reference photos).

Near-dup mode: PDQ (the query's 8 dihedral variants, minimum distance per media item) is the
primary signal with Meta's match distance 31; pHash (also dihedral) covers items without a usable
PDQ hash. score = 1 - distance / bits, in [0, 1]. A PDQ hash of quality < 50 (Meta) on either side
only counts as an exact match (distance 0); otherwise that item is ranked by pHash.

Beyond the contract's keys the object carries: per result ``above_threshold`` (and ``face_id``,
``det_score`` in face mode; ``distance``, ``signal``, ``distances`` in near-dup mode),
``threshold_source`` (calibration id or default, measured FAR/FRR, target), ``indexes`` (which
index answered: kind, exact or approximate, vectors, loaded/built/rebuilt) and, when relevant,
``warnings``. When an embedder has neither a calibration nor a measured default, ``threshold`` and
``above_threshold`` are null rather than a guess.

Search reads the evidence database and the query only; it writes nothing but index files.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.build import ensure_indexes, face_model_keys
from vidpipe.errors import MissingDependencyError, UsageError
from vidpipe.extract.hashers import PDQ_MATCH_DISTANCE, PDQ_MIN_QUALITY

MODES = ("face", "scene", "near-dup", "video")
DEFAULT_TOP_K = 20
QUERY_MAX_BYTES = 512 * 1024 * 1024  # a query is one photo; anything larger is a mistake, not a query

# Default face thresholds per embedder model, used when the case has no active calibration.
# Measured 2026-11-29: `vidpipe calibrate faces --labels ../shared/data/faces/labels.csv` (sha256 0baa757a...), FAR<=0.001.
DEFAULT_FACE_CALIBRATION: dict[str, dict] = {
    "facenet-inceptionresnetv1-casia-webface-20180408-102900": {
        "threshold": 0.5261, "far": 0.00059, "frr": 0.0203, "target": "FAR=0.001", "n_genuine": 148,
        "n_impostor": 1696, "source": "vidpipe calibrate faces on ../shared/data/faces/labels.csv (66 photos, 17 people)"},
}
# pHash is a fallback signal: imagededup's PHash.find_duplicates default max_distance_threshold = 10 of 64 bits.
PHASH_MATCH_DISTANCE = 10


@dataclass
class FaceModels:
    """A loaded detector and embedder, and the embedder's model_key as ingest records it."""

    detector: object
    embedder: object
    model_key: str


def model_key_of(info: dict, role: str = "face_embedder") -> str:
    """The key `CaseWriter.register_model` stores: name@first 16 hex of the weights SHA-256."""
    name = info.get("model") or info.get("name") or role
    return f"{name}@{(info.get('weights_sha256') or 'unknown')[:16]}"


def load_face_models(device: str | None = None, model_keys=None) -> FaceModels:
    """The detector and the embedder the case's faces were made with (``model_keys``: the case's
    embedder keys; the default embedder when None or when none is installed).
    MissingDependencyError (exit 3) when weights are missing."""
    from vidpipe.extract.faces import DEFAULT_EMBEDDER, embedder_names, get_detector, get_embedder
    from vidpipe.models.device import select_device

    device = select_device(device)
    embedder = key = None
    if model_keys:
        wanted = {k.rpartition("@")[0] for k in model_keys}
        for name in [DEFAULT_EMBEDDER, *(n for n in embedder_names() if n != DEFAULT_EMBEDDER)]:
            try:
                candidate = get_embedder(name, device=device)
            except (MissingDependencyError, ValueError):
                continue
            info = candidate.weights_info()  # hashes the weights file: once per embedder
            if model_key_of(info) in model_keys or info.get("model") in wanted:
                embedder, key = candidate, model_key_of(info)
                break
    if embedder is None:
        embedder = get_embedder(device=device)  # checks the weights file first: fail before any decoding
        key = model_key_of(embedder.weights_info())
    detector = get_detector(device=device)
    return FaceModels(detector, embedder, key)


def read_query(path: Path) -> tuple[str, bytes, object]:
    """(absolute path, bytes, sniffed FileType) of a query file."""
    from vidpipe import filetype

    qpath, real, file_type = query_file(path)
    data = Path(real).read_bytes()
    return qpath, data, filetype.sniff(data[:4096])


def query_file(path: Path) -> tuple[str, str, object]:
    """(absolute path, resolved path, sniffed FileType) of a query file; only its first bytes are
    read here: the query is decoded in the sandbox (indexer.query_prep)."""
    from vidpipe import filetype

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"query file not found: {path}")
    if p.stat().st_size > QUERY_MAX_BYTES:
        raise UsageError(f"query file is larger than {QUERY_MAX_BYTES} bytes: {path}")
    with open(p, "rb") as fh:
        head = fh.read(4096)
    return os.path.abspath(p), os.path.realpath(p), filetype.sniff(head)


def detect_and_embed(query: bytes | Path | str, file_type, models: FaceModels) -> tuple[list[dict], np.ndarray]:
    """Faces of an image (its bytes or its path) as ingest sees them: ([{"box", "det_score"}] in
    full-resolution upright pixels, best first; (n, dim) L2-normalised embeddings). The image is
    decoded and downscaled in the sandbox; the models see only that bounded array."""
    from indexer.query_prep import prepare_query

    prepared = prepare_query(query if isinstance(query, bytes) else Path(query), file_type, "face")
    pixels, scale = prepared.pixels, prepared.scale
    faces = models.detector.detect(pixels)
    vectors = models.embedder.embed_faces(pixels, faces) if faces else np.zeros((0, models.embedder.dim), np.float32)
    described = [{"box": [round(v / scale, 2) for v in f.box], "det_score": round(float(f.det_score), 6)} for f in faces]
    return described, np.asarray(vectors, np.float32)


def face_threshold(conn: sqlite3.Connection, model_key: str) -> tuple[float | None, dict]:
    """The active calibration for this embedder, else the measured default, else none (null)."""
    row = conn.execute("SELECT calibration_id, threshold, far, frr, target, n_genuine, n_impostor FROM calibrations "
                       "WHERE kind = 'face' AND model_key = ? AND active = 1 ORDER BY calibration_id DESC LIMIT 1",
                       (model_key,)).fetchone()
    if row is not None:
        return float(row["threshold"]), {"calibration_id": row["calibration_id"], "default": None, "far": row["far"],
                                         "frr": row["frr"], "target": row["target"], "n_genuine": row["n_genuine"],
                                         "n_impostor": row["n_impostor"], "model_key": model_key}
    default = DEFAULT_FACE_CALIBRATION.get(model_key.rpartition("@")[0])
    if default is None:
        return None, {"calibration_id": None, "default": None, "far": None, "frr": None, "target": None,
                      "model_key": model_key,
                      "note": "no calibration for this embedder: run `vidpipe calibrate faces --case ... --labels ...`"}
    return default["threshold"], {"calibration_id": None, "default": default["source"], "far": default["far"],
                                  "frr": default["frr"], "target": default["target"],
                                  "n_genuine": default["n_genuine"], "n_impostor": default["n_impostor"],
                                  "model_key": model_key}


def _media_info(conn: sqlite3.Connection, sha256s) -> dict[str, dict]:
    """sha256 -> {"sha256", "path" (smallest locator, bytewise, as the item_status view picks), "kind"}."""
    out: dict[str, dict] = {}
    shas = sorted(set(sha256s))
    for start in range(0, len(shas), 500):
        chunk = shas[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
                f"SELECT m.sha256, m.kind, (SELECT i.locator FROM items i WHERE i.sha256 = m.sha256 "
                f"ORDER BY i.locator_bytes LIMIT 1) AS path FROM media m WHERE m.sha256 IN ({marks})", chunk):
            out[row["sha256"]] = {"sha256": row["sha256"], "path": row["path"], "kind": row["kind"]}
    return out


def search(case_dir: Path, query: Path, mode: str, top_k: int = DEFAULT_TOP_K, *,
           models: FaceModels | None = None, scene_models=None, rerank: bool = True) -> dict:
    """Run one query against a case; return the contract's ``search --json`` object.

    ``models`` / ``scene_models`` let a long-lived caller (the UI, tests) reuse loaded models;
    ``rerank`` False skips the geometric verification of scene candidates (global score only).
    """
    from vidpipe.store.casedb import open_case_readonly

    if mode not in MODES:
        raise UsageError(f"unknown search mode {mode!r}; choose from {', '.join(MODES)}")
    if top_k < 1:
        raise UsageError("--top-k must be at least 1")
    paths, conn = open_case_readonly(Path(case_dir))
    try:
        qpath, data, file_type = query_file(Path(query))  # ``data``: the resolved path, decoded in the sandbox
        if mode == "face":
            return _search_faces(paths, conn, qpath, data, file_type, top_k,
                                 models or load_face_models(model_keys=face_model_keys(conn)))
        if mode == "scene":
            from indexer.scene_search import load_scene_models, search_scenes

            return search_scenes(paths, conn, qpath, data, file_type, top_k, scene_models or load_scene_models(),
                                 rerank=rerank)
        if mode == "video":
            return _search_video(conn, qpath, data, file_type, top_k)
        return _search_near_dup(paths, conn, qpath, data, file_type, top_k)
    finally:
        conn.close()


def _search_faces(paths, conn, qpath, data, file_type, top_k, models: FaceModels) -> dict:
    counts = face_model_keys(conn)
    if counts and models.model_key not in counts:
        raise MissingDependencyError(
            f"the case's faces were embedded with {', '.join(counts)}, but this installation loads "
            f"{models.model_key}; point VIDPIPE_FACENET_WEIGHTS at that model's weights file")
    handle = ensure_indexes(paths, conn, ("face",), face_model_key=models.model_key)["face"]
    threshold, source = face_threshold(conn, models.model_key)
    faces, vectors = detect_and_embed(data, file_type, models)
    results: list[dict] = []
    for qi in range(len(faces)):
        results.extend(_face_hits(conn, handle.index, vectors[qi], qi, top_k, threshold))
    out = {"query": {"path": qpath, "mode": "face", "faces": faces}, "threshold": threshold,
           "threshold_source": source, "results": results, "indexes": {"face": handle.describe()}}
    if not counts:
        out["warnings"] = ["the case holds no faces (ingested with --no-faces, or no faces found)"]
    return out


def _face_hits(conn, index, vector: np.ndarray, query_face: int, top_k: int, threshold: float | None) -> list[dict]:
    """Top-k media items (video frames separately) for one query face, best face per item."""
    n = len(index)
    k = min(n, max(4 * top_k, 64))
    best: dict[tuple, dict] = {}
    while k > 0:
        scores, ids = index.search(vector[None, :], k)
        rows = _face_rows(conn, [int(i) for i in ids[0] if i >= 0])
        best.clear()
        for score, face_id in zip(scores[0], ids[0]):
            row = rows.get(int(face_id))
            if row is None:
                continue
            key = (row["sha256"], row["video_time_s"])
            if key not in best:  # results arrive best first: the first face of an item is its best
                best[key] = {"score": float(score), "row": row}
        if len(best) >= top_k or k >= n:
            break
        k = min(n, k * 4)
    hits = sorted(best.values(), key=lambda h: (-h["score"], h["row"]["face_id"]))[:top_k]
    media = _media_info(conn, [h["row"]["sha256"] for h in hits])
    out = []
    for rank, h in enumerate(hits, 1):
        row = h["row"]
        out.append({"rank": rank, "score": round(h["score"], 6), "query_face": query_face,
                    "media": {**media.get(row["sha256"], {"sha256": row["sha256"], "path": None, "kind": None}),
                              "video_time_s": row["video_time_s"]},
                    "box": [round(row[c], 2) for c in ("x1", "y1", "x2", "y2")], "face_id": row["face_id"],
                    "det_score": round(row["det_score"], 6),
                    "above_threshold": None if threshold is None else bool(h["score"] >= threshold)})
    return out


def rows_by_id(conn: sqlite3.Connection, select: str, id_column: str, ids: list[int]) -> dict[int, sqlite3.Row]:
    """``id -> row`` of ``{select} WHERE {id_column} IN (ids)``, in chunks SQLite's variable limit allows."""
    out = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for row in conn.execute(f"{select} WHERE {id_column} IN ({','.join('?' * len(chunk))})", chunk):
            out[row[id_column]] = row
    return out


def _face_rows(conn: sqlite3.Connection, face_ids: list[int]) -> dict[int, sqlite3.Row]:
    return rows_by_id(conn, "SELECT face_id, sha256, video_time_s, x1, y1, x2, y2, det_score FROM faces",
                      "face_id", face_ids)


# ------------------------------------------------------------------------------------------- near-dup
def _dihedral_phashes(rgb) -> list[str]:
    from indexer.query_prep import dihedral_phashes

    return dihedral_phashes(rgb)


def _min_distance(query_hexes: list[str], value: str | None) -> int | None:
    if not value:
        return None
    v = int(value, 16)
    return min((int(q, 16) ^ v).bit_count() for q in query_hexes)


def _search_near_dup(paths, conn, qpath, data, file_type, top_k) -> dict:
    from indexer.binary_index import codes_from_hex
    from indexer.query_prep import prepare_query

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
        from indexer.video_search import keyframe_hits

        scored += [{"sha256": h["sha256"], "score": h["score"], "signal": "pdq", "distance": h["distance"],
                    "above": True, "distances": {"pdq": h["distance"]}, "low_quality": False,
                    "video_time_s": h["video_time_s"]} for h in keyframe_hits(conn, pdq_hexes, top_k)]
    scored = sorted(scored, key=lambda s: (-s["score"], s["signal"] != "pdq", s["sha256"],
                                           s.get("video_time_s") or 0))[:top_k]
    media = _media_info(conn, [s["sha256"] for s in scored])
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


def _search_video(conn, qpath, data, file_type, top_k) -> dict:
    from indexer.video_search import VIDEO_THRESHOLD, VIDEO_THRESHOLD_SOURCE, query_signatures, search_videos

    query, query_tmk = query_signatures(data, file_type)
    hits = search_videos(conn, query, top_k, query_tmk)
    media = _media_info(conn, [h["sha256"] for h in hits])
    results = [{"rank": rank, "score": h["score"], "query_face": None,
                "media": {**media[h["sha256"]], "video_time_s": None}, "box": None,
                "score_signal": h["score_signal"], "vpdq_match": h["vpdq_match"],
                "query_match_percent": h["query_match_percent"],
                "compared_match_percent": h["compared_match_percent"], "above_threshold": h["above_threshold"]}
               for rank, h in enumerate(hits, 1)]
    return {"query": {"path": qpath, "mode": "video", "faces": [], "vpdq_frames": len(query)},
            "threshold": VIDEO_THRESHOLD, "threshold_source": VIDEO_THRESHOLD_SOURCE, "results": results}


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
