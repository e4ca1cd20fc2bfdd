"""Face threshold calibration: measure the embedder on labelled photos, pick the threshold at a
target false-match rate, store it (with its error rates) in the case's ``calibrations`` table.

Protocol (documented because the numbers depend on it):
- labels CSV with columns ``file`` (relative to the CSV, or absolute) and ``identity``; rows with
  an empty identity are ignored; where a ``role`` column exists only ``role == identity`` rows
  count (distinct photos: no mirrored, resized or cropped copies); where ``global_identity``
  exists and is non-empty it names the person (it merges people known to appear in two sources);
- each photo is represented by its largest detected face, prepared exactly as ingest prepares
  evidence; a photo without a face is a failure to enrol, listed and left out of the pairs;
- genuine pairs: two photos of one identity; impostor pairs: two photos of different identities
  from one ``source_repo`` when that column exists (the data's README: identities from different
  sources may overlap unnoticed), else any two;
- accept means score >= threshold; the threshold is the smallest value at which at most
  ``target_far`` of the impostor pairs are accepted; FAR and FRR are measured at it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidpipe.errors import MissingDependencyError, UsageError, VidpipeError
from vidpipe.search.api import read_query
from vidpipe.search.build import face_model_keys
from vidpipe.search.faces import detect_and_embed, load_face_models
from vidpipe.store.casedb import WriteLock, open_case, transaction, utc_now

DEFAULT_TARGET_FAR = 0.001
ROC_FARS = (0.1, 0.01, 0.001, 0.0001)
ROC_GRID = tuple(round(x, 2) for x in np.arange(0.0, 1.0001, 0.05))


@dataclass(frozen=True)
class LabelledPhoto:
    path: Path
    identity: str
    group: str  # source repository (impostor pairs stay within one), "" when unknown


def read_labels(csv_path: Path) -> list[LabelledPhoto]:
    """Labelled photos from a CSV (see the module docstring for the rules)."""
    csv_path = Path(csv_path)
    try:
        with csv_path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = set(reader.fieldnames or [])
            if not {"file", "identity"} <= fields:
                raise UsageError(f"{csv_path}: needs the columns file,identity (has {', '.join(sorted(fields))})")
            rows = list(reader)
    except FileNotFoundError:
        raise UsageError(f"labels file not found: {csv_path}") from None
    out = []
    for row in rows:
        identity = (row.get("global_identity") or "").strip() or (row.get("identity") or "").strip()
        if not (row.get("identity") or "").strip() or not row.get("file"):
            continue
        if "role" in fields and row["role"] != "identity":
            continue
        out.append(LabelledPhoto(csv_path.parent / row["file"], identity, (row.get("source_repo") or "").strip()))
    return out


def embed_photos(photos: list[LabelledPhoto], models) -> tuple[list[int], np.ndarray, list[dict]]:
    """(indices of enrolled photos, their embeddings, failures {"file", "reason"})."""
    enrolled, vectors, failures = [], [], []
    for i, photo in enumerate(photos):
        try:
            _, data, file_type = read_query(photo.path)
            faces, emb = detect_and_embed(data, file_type, models)
        except VidpipeError as exc:
            failures.append({"file": str(photo.path), "reason": str(exc)})
            continue
        if not faces:
            failures.append({"file": str(photo.path), "reason": "no_face"})
            continue
        areas = [(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) for f in faces]
        enrolled.append(i)
        vectors.append(emb[int(np.argmax(areas))])
    dim = models.embedder.dim
    return enrolled, (np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)), failures


def pair_scores(emb: np.ndarray, identities: list[str], groups: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(genuine scores, impostor scores): cosine over all unordered pairs under the protocol."""
    sims = emb @ emb.T
    i, j = np.triu_indices(len(emb), k=1)
    ident, grp = np.asarray(identities, dtype=object), np.asarray(groups, dtype=object)
    same = ident[i] == ident[j]
    same_group = grp[i] == grp[j]
    return sims[i[same], j[same]].astype(np.float64), sims[i[~same & same_group], j[~same & same_group]].astype(np.float64)


def threshold_at_far(genuine: np.ndarray, impostor: np.ndarray, target_far: float) -> tuple[float, float, float]:
    """(threshold, measured FAR, measured FRR): the lowest threshold accepting <= target_far of impostors."""
    if len(impostor) == 0:
        raise UsageError("no impostor pairs: the labels need at least two identities (within one source)")
    desc = np.sort(impostor)[::-1]
    allowed = int(math.floor(target_far * len(desc) + 1e-9))
    threshold = float(np.nextafter(desc[allowed], np.inf)) if allowed < len(desc) else float(desc[-1])
    far = float(np.mean(impostor >= threshold))
    frr = float(np.mean(genuine < threshold)) if len(genuine) else float("nan")
    return threshold, far, frr


def roc_summary(genuine: np.ndarray, impostor: np.ndarray) -> dict:
    """AUC, equal error rate, the operating points at standard FARs and a coarse threshold grid."""
    imp = np.sort(impostor)
    below = np.searchsorted(imp, genuine, "left")
    ties = np.searchsorted(imp, genuine, "right") - below
    auc = float((below + 0.5 * ties).sum() / (len(genuine) * len(imp))) if len(genuine) and len(imp) else None
    cands = np.unique(np.concatenate([genuine, impostor]))
    far = np.array([np.mean(impostor >= t) for t in cands])
    frr = np.array([np.mean(genuine < t) for t in cands])
    k = int(np.argmin(np.abs(far - frr))) if len(cands) else 0
    points = []
    for target in ROC_FARS:
        t, fa, fr = threshold_at_far(genuine, impostor, target)
        points.append({"target_far": target, "threshold": round(t, 6), "far": fa, "frr": fr})
    grid = [{"threshold": t, "far": float(np.mean(impostor >= t)), "frr": float(np.mean(genuine < t))} for t in ROC_GRID]
    return {"auc": auc, "eer": float((far[k] + frr[k]) / 2) if len(cands) else None,
            "eer_threshold": float(cands[k]) if len(cands) else None, "at_far": points, "grid": grid}


def calibrate_faces(case_dir: Path, labels_csv: Path, target_far: float = DEFAULT_TARGET_FAR, *,
                    models=None) -> dict:
    """Measure, pick and store the face threshold for the case's embedder; return what was stored."""
    if not 0.0 < target_far < 1.0:
        raise UsageError("--target-far must be between 0 and 1")
    photos = read_labels(labels_csv)
    if len(photos) < 3:
        raise UsageError(f"{labels_csv}: too few labelled photos ({len(photos)})")
    paths, conn = open_case(Path(case_dir), create=False)
    try:
        models = models or load_face_models(model_keys=face_model_keys(conn))
        keys = face_model_keys(conn)
        if keys and models.model_key not in keys:
            raise MissingDependencyError(f"the case's faces were embedded with {', '.join(keys)}, but this "
                                         f"installation loads {models.model_key}")
        enrolled, emb, failures = embed_photos(photos, models)
        identities = [photos[i].identity for i in enrolled]
        genuine, impostor = pair_scores(emb, identities, [photos[i].group for i in enrolled])
        if len(genuine) == 0:
            raise UsageError("no genuine pairs: the labels need an identity with at least two photos with a face")
        threshold, far, frr = threshold_at_far(genuine, impostor, target_far)
        roc = roc_summary(genuine, impostor)
        csv_bytes = Path(labels_csv).read_bytes()
        labels = {"path": str(Path(labels_csv).resolve()), "sha256": hashlib.sha256(csv_bytes).hexdigest(),
                  "photos": len(photos), "enrolled": len(enrolled), "identities": len(set(identities))}
        detail = {"protocol": "largest face per photo; impostors within one source_repo; accept = score >= threshold",
                  "failed_to_enrol": failures, **roc}
        target = f"FAR={target_far:g}"
        with WriteLock(paths), transaction(conn):  # the old calibration retired and the new one stored together
            conn.execute("UPDATE calibrations SET active = 0 WHERE kind = 'face' AND model_key = ?",
                         (models.model_key,))
            cur = conn.execute(
                "INSERT INTO calibrations(kind, model_key, threshold, target, far, frr, n_genuine, n_impostor, "
                "labels, detail, created_utc, active) VALUES ('face',?,?,?,?,?,?,?,?,?,?,1)",
                (models.model_key, threshold, target, far, frr, len(genuine), len(impostor), json.dumps(labels),
                 json.dumps(detail), utc_now()))
        return {"calibration_id": cur.lastrowid, "kind": "face", "model_key": models.model_key,
                "threshold": threshold, "target": target, "far": far, "frr": frr, "n_genuine": len(genuine),
                "n_impostor": len(impostor), "labels": labels, "failed_to_enrol": failures,
                "auc": roc["auc"], "eer": roc["eer"], "at_far": roc["at_far"]}
    finally:
        conn.close()
