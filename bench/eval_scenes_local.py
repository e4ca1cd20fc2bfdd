"""Issue-13 local-evidence variants for `bench.eval_scenes` (vidpipe.scenes_local): RootSIFT
aggregated into VLAD / ASMK as a second index, fused with the global room vector, epipolar
verification of the top K, and the upper bound of verifying every gallery image.

`local_rows(es, vecs, ms_img, rate)` is called by `eval_scenes.run_variants` once per evaluation set
and returns rows in the same format as its VARIANTS rows (same metrics, same per-variant threshold at
the default's false-accept rate, same held-out split). Alone, for iterating on these variants only:

    python -m bench.eval_scenes_local [--data ../shared/data/scenes] [--quick] [--json]

Everything local is learned without labels on the set's own images (the codebook), as it would be
on a case. Features and the all-pairs inlier matrix are cached under CACHE (keyed by pixels, masks
and the extraction parameters): the first run on 2 cores takes minutes, later ones seconds; the
ms figures are those measured when the cache was written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path.home() / ".cache" / "vidpipe-eval" / "local"
VERIFY_TOP_K = 10  # candidates verified per query, as geometry.RERANK_TOP_K in search
FUSION_WEIGHT = 0.5  # global and local similarity weighted equally (no tuning on either set)
# (label, global descriptor or None, local index or None, geometry: None | "top" | "all").
# local index: "vlad<k>" or "asmk<k>" over RootSIFT, codebook learned on the set's own images.
LOCAL_VARIANTS = [
    ("RootSIFT+MAGSAC-F, verify ALL (upper bound)", "rmac", None, "all"),
    ("VLAD-256 RootSIFT", None, "vlad256", None),
    ("ASMK-256 RootSIFT", None, "asmk256", None),
    ("ASMK-1024 RootSIFT", None, "asmk1024", None),
    ("ASMK-256 CNN block 10", None, "cnn-asmk256", None),
    ("VLAD-64 CNN block 10", None, "cnn-vlad64", None),
    ("R-MAC + ASMK-1024 (score fusion 0.5)", "rmac", "asmk1024", None),
    ("R-MAC + ASMK-1024 + geometry top 10", "rmac", "asmk1024", "top"),
    ("ASMK-1024 + geometry top 10", None, "asmk1024", "top"),
    ("R-MAC + ASMK-1024 (z fusion)", "rmac", "z:asmk1024", None),
    ("R-MAC + ASMK-1024 (z) + geometry top 10", "rmac", "z:asmk1024", "top"),
    ("GeM + ASMK-256 CNN (z) + geometry top 10", "gem", "z:cnn-asmk256", "top"),
    ("R-MAC + ASMK-1024 + ASMK-256 CNN (z)", "rmac", "z:asmk1024+cnn-asmk256", None),
    ("R-MAC + ASMK-1024 + ASMK-256 CNN (z) + geometry top 10", "rmac", "z:asmk1024+cnn-asmk256", "top"),
]


def _key(es, extra: str) -> str:
    from vidpipe.extract.scenes import geometry

    h = hashlib.sha256((geometry.METHOD + extra).encode())
    for im, m in zip(es.images, es.masks):
        h.update(np.ascontiguousarray(im).tobytes())
        h.update(repr(m).encode())
    return h.hexdigest()[:24]


def features(es, cache: Path | None = CACHE) -> tuple[list, float]:
    """RootSIFT features of every image of the set (people masked), and ms per image."""
    from vidpipe.scenes_local import rootsift

    path = cache / f"{_key(es, 'feats')}-feats.npz" if cache else None
    if path and path.is_file() and path.with_suffix(".ms.json").is_file():
        return rootsift.load(path), json.loads(path.with_suffix(".ms.json").read_text())["ms"]
    t = time.perf_counter()
    feats = [rootsift.extract(im, m or None) for im, m in zip(es.images, es.masks)]
    ms = (time.perf_counter() - t) * 1000 / max(1, len(feats))
    if path:
        rootsift.save(path, feats)
        path.with_suffix(".ms.json").write_text(json.dumps({"ms": ms}))
    return feats, ms


def inlier_matrix(es, feats: list, cache: Path | None = CACHE) -> tuple[np.ndarray, float]:
    """Verified inliers between every pair of the set, and ms per verified pair."""
    from vidpipe.scenes_local import verify

    path = cache / f"{_key(es, 'inliers')}-inliers.npz" if cache else None
    if path and path.is_file():
        with np.load(path) as z:
            return z["m"], float(z["ms"])
    n = len(feats)
    t = time.perf_counter()
    m = verify.inlier_matrix(feats)
    ms = (time.perf_counter() - t) * 1000 / max(1, n * (n - 1) // 2)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, m=m, ms=ms)
    return m, ms


def cnn_features(es, cache: Path | None = CACHE) -> tuple[list[np.ndarray], float]:
    """Dense EfficientNet-Lite0 cell descriptors (vidpipe.scenes_local.cnn_local) of every image
    (people's cells left out), and ms per image."""
    from vidpipe.scenes_local.cnn_local import CnnLocalExtractor

    ext = CnnLocalExtractor()
    path = cache / f"{_key(es, ext.version)}-cnn.npz" if cache else None
    if path and path.is_file():
        with np.load(path) as z:
            ends = np.cumsum(z["counts"])
            return [z["d"][e - c:e] for e, c in zip(ends, z["counts"])], float(z["ms"])
    t = time.perf_counter()
    descs = [ext.extract(im, m or None) for im, m in zip(es.images, es.masks)]
    ms = (time.perf_counter() - t) * 1000 / max(1, len(descs))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, d=np.concatenate(descs), counts=np.array([len(d) for d in descs]), ms=ms)
    return descs, ms


def local_similarity(kind: str, feats: list) -> tuple[np.ndarray, float, float]:
    """(n, n) similarity of the local index `kind` (vlad<k> / asmk<k> over RootSIFT features, or
    cnn-asmk<k> / cnn-vlad<k> over dense CNN descriptors given as arrays), codebook learned on these
    images; ms per image (encoding; the codebook's training time is spread over the images) and
    ms per query (scoring the gallery)."""
    from vidpipe.scenes_local import asmk, codebook, rootsift, vlad

    if kind.startswith("cnn-"):
        kind = kind[4:]
        descs = list(feats)
    else:
        descs = [rootsift.rootsift(f.descriptors) for f in feats]
    k = int(kind[4:])
    t = time.perf_counter()
    words = codebook.train(np.concatenate(descs), k)
    if kind.startswith("vlad"):
        v = vlad.encode_many(descs, words)
        ms_img = (time.perf_counter() - t) * 1000 / len(feats)
        t = time.perf_counter()
        s = v @ v.T
    else:
        agg = [asmk.aggregate(d, words) for d in descs]
        ms_img = (time.perf_counter() - t) * 1000 / len(feats)
        t = time.perf_counter()
        s = asmk.similarity_matrix(agg)
    ms_q = (time.perf_counter() - t) * 1000 / len(feats)
    return s.astype(np.float64), ms_img, ms_q


def variant_matrix(glob: np.ndarray | None, local: np.ndarray | None, inl: np.ndarray, geometry_mode: str | None,
                   top_k: int = VERIFY_TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """(order, reported scores), diagonal -inf: global and/or local similarity (score fusion when
    both), then the inlier bonus of geometry.combine for the verified pairs (top K of each query's
    row, or all)."""
    from vidpipe.extract.scenes.geometry import GEOMETRY_WEIGHT
    from vidpipe.scenes_local import fusion

    if glob is not None and local is not None:
        s = fusion.score_fusion(glob, local, FUSION_WEIGHT)
    else:
        s = (glob if glob is not None else local).astype(np.float64)
    s = s.copy()
    np.fill_diagonal(s, -np.inf)
    if geometry_mode is None:
        return s, s.copy()
    out = s.copy()
    n = len(s)
    for q in range(n):
        cand = np.arange(n) if geometry_mode == "all" else np.argsort(-s[q], kind="stable")[:top_k]
        cand = cand[cand != q]
        out[q, cand] = fusion.add_geometry(s[q, cand], inl[q, cand], GEOMETRY_WEIGHT)
    return out, out.copy()


def local_rows(es, vecs: dict, ms_img: dict, rate: float, quick: bool = False, cache: Path | None = CACHE) -> list[dict]:
    """Rows of LOCAL_VARIANTS on one EvalSet, in run_variants' row format."""
    from bench.eval_scenes import variant_row

    feats, feat_ms = features(es, cache)
    inl, pair_ms = inlier_matrix(es, feats, cache)
    cnn, cnn_ms = cnn_features(es, cache) if any(v[2] and "cnn-" in v[2] for v in LOCAL_VARIANTS) else ([], 0.0)
    locals_: dict = {}
    rows = []
    n = len(es.images)
    for label, gkey, lkey, geom in LOCAL_VARIANTS:
        parts = lkey.removeprefix("z:").split("+") if lkey else []
        for p in parts:
            if p not in locals_:
                locals_[p] = local_similarity(p, cnn if p.startswith("cnn-") else feats)
        glob = None
        if gkey:
            v = vecs[gkey].astype(np.float64)
            glob = v @ v.T
        l_img = sum(locals_[p][1] for p in parts)
        l_q = sum(locals_[p][2] for p in parts)
        if lkey and lkey.startswith("z:"):
            from vidpipe.scenes_local import fusion

            mats = [glob] if glob is not None else []
            mats += [locals_[p][0] for p in parts]
            for m in mats:
                np.fill_diagonal(m, -np.inf)  # the query itself is not in its gallery
            order, plain = variant_matrix(fusion.zscore_fusion(*mats), None, inl, geom)
            for m in mats:
                np.fill_diagonal(m, 1.0)
        else:
            local = locals_[parts[0]][0] if parts else None
            order, plain = variant_matrix(glob, local, inl, geom)
        n_verify = {None: 0, "top": VERIFY_TOP_K, "all": n - 1}[geom]
        ms_i = (ms_img[gkey] if gkey else 0.0) + l_img
        ms_i += feat_ms if geom or any(not p.startswith("cnn-") for p in parts) else 0.0
        ms_i += cnn_ms if any(p.startswith("cnn-") for p in parts) else 0.0
        ms_q = l_q + n_verify * pair_ms  # gallery features precomputed at ingest: matching only
        rows.append(variant_row(es, label, order, plain, rate, ms_i, ms_q))
    return rows


def main(argv: list[str] | None = None) -> int:
    from bench import eval_scenes as ev

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ev.DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--vec-cache", type=Path, default=CACHE.parent / "vecs",
                    help="global vectors cache (eval_scenes --cache)")
    args = ap.parse_args(argv)
    import cv2
    import torch

    from vidpipe.extract.scenes import get_scene_embedder
    from vidpipe.extract.scenes.effnet import SCENE_MATCH_THRESHOLD

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    out = {"sets": [], "rows": [], "reference_threshold": SCENE_MATCH_THRESHOLD}
    embedders = {k: get_scene_embedder(**o) for k, o in ev.DESCRIPTORS.items()}
    for es in (ev.room_eval_set(args.quick), ev.scenes_eval_set(args.data)):
        vecs, ms_img = {}, {}
        for key, emb in embedders.items():
            vecs[key], ms_img[key] = ev.cached_embed(args.vec_cache, emb, es, es.masks if key != "naive" else None)
        _, ref_plain, _ = ev.variant_scores(vecs["rmac"], ())
        cal = np.flatnonzero(es.calib)
        negs = [ref_plain[q, g] for q in cal for g in cal if q != g and ev._negative(es, q, g)]
        rate = float(np.mean(np.array(negs) >= SCENE_MATCH_THRESHOLD)) if negs else 0.0
        out["sets"].append({"name": es.name, "n_images": len(es.images), "n_calib": int(es.calib.sum()),
                            "n_people": sum(bool(m) for m in es.masks), "fa_rate": round(rate, 5),
                            "n_calib_negatives": len(negs)})
        for label, key, post in ev.VARIANTS[:3] + [v for v in ev.VARIANTS if v[2] == ("fused",)]:
            order, plain, ms_q = ev.variant_scores(vecs[key], tuple(p for p in post if p != "fused"))
            if "fused" in post:
                order, plain, ms_q = ev.fused_scores(order, plain, es, 5 if args.quick else 10)
            out["rows"].append(ev.variant_row(es, label, order, plain, rate, ms_img[key], ms_q))
        out["rows"] += local_rows(es, vecs, ms_img, rate, quick=args.quick)
    print(json.dumps(out) if args.json else ev.markdown_variants(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
