"""Face search: the query's faces, found and embedded as ingest would, each searched on its own.

The query is decoded, oriented and downscaled in the sandbox exactly as ingest prepares evidence
(`vidpipe.decode.model_input`, via `vidpipe.search.query_prep`), every face is detected and
embedded with the case's embedder, and each query face is searched on its own. A media item
appears once per query face (its best-matching face), except that different frames of one video
are separate results. Scores are cosine similarities; the threshold is the active calibration for
the embedder, else the measured default below, and is always reported with its source and error
rates. When an embedder has neither, ``threshold`` and ``above_threshold`` are null, not a guess.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidpipe.errors import MissingDependencyError
from vidpipe.models.registry import ModelConfig, load_case_models
from vidpipe.search.build import ensure_indexes, face_model_keys
from vidpipe.search.media import media_info, rows_by_id
from vidpipe.search.query_prep import prepare_query

# Default face thresholds per embedder model, used when the case has no active calibration.
# Measured 2026-11-29: `vidpipe calibrate faces --labels ../shared/data/faces/labels.csv` (sha256 0baa757a...), FAR<=0.001.
DEFAULT_FACE_CALIBRATION: dict[str, dict] = {
    "facenet-inceptionresnetv1-casia-webface-20180408-102900": {
        "threshold": 0.5261, "far": 0.00059, "frr": 0.0203, "target": "FAR=0.001", "n_genuine": 148,
        "n_impostor": 1696, "source": "vidpipe calibrate faces on ../shared/data/faces/labels.csv (66 photos, 17 people)"},
}


@dataclass
class FaceModels:
    """A loaded detector and embedder, and the embedder's model_key as ingest records it."""

    detector: object
    embedder: object
    model_key: str


def load_face_models(device: str | None = None, model_keys=None) -> FaceModels:
    """The detector and the embedder the case's faces were made with (``model_keys``: the case's
    embedder keys; the default embedder when None or when none is installed), through the one
    loader of a case's models (`vidpipe.models.registry.load_case_models`; scenes off).
    MissingDependencyError (exit 3) when weights are missing."""
    models = load_case_models(ModelConfig(scene_embedder=None, case_keys=tuple(model_keys or ())), device)
    return FaceModels(models.detector, models.embedder, models.embedder_key)


def detect_and_embed(query: bytes | Path | str, file_type, models: FaceModels) -> tuple[list[dict], np.ndarray]:
    """Faces of an image (its bytes or its path) as ingest sees them: ([{"box", "det_score"}] in
    full-resolution upright pixels, best first; (n, dim) L2-normalised embeddings). The image is
    decoded and downscaled in the sandbox; the models see only that bounded array."""
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


def search_faces(paths, conn, qpath, data, file_type, top_k, models: FaceModels) -> dict:
    """The contract's search object for ``--mode face``."""
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
        results.extend(face_hits(conn, handle.index, vectors[qi], qi, top_k, threshold))
    out = {"query": {"path": qpath, "mode": "face", "faces": faces}, "threshold": threshold,
           "threshold_source": source, "results": results, "indexes": {"face": handle.describe()}}
    if not counts:
        out["warnings"] = ["the case holds no faces (ingested with --no-faces, or no faces found)"]
    return out


def face_hits(conn, index, vector: np.ndarray, query_face: int, top_k: int, threshold: float | None) -> list[dict]:
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
    media = media_info(conn, [h["row"]["sha256"] for h in hits])
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


def _face_rows(conn: sqlite3.Connection, face_ids: list[int]) -> dict[int, sqlite3.Row]:
    return rows_by_id(conn, "SELECT face_id, sha256, video_time_s, x1, y1, x2, y2, det_score FROM faces",
                      "face_id", face_ids)
