"""Issue-13 object-level variants for `bench.eval_scenes` (vidpipe.scenes_regions): region
descriptors (R-MAC grid + edge boxes, max-pooled from one EfficientNet-Lite0 map) matched by
Chamfer similarity, for finding the *hotel* when the query's own room is not in the gallery; and a
two-level threshold policy (room threshold on the global score, hotel threshold on the region score).

`region_rows(es, vecs, ms_img, rate)` is called by `eval_scenes.run_variants` once per evaluation
set and returns rows in its row format (room/hotel R@1/R@5/mAP, per-variant threshold at the
default's false-accept rate, held-out false accepts), plus hotel-claim fields: `hotel_thr` (labelled:
the calibration split's different-hotel pairs at the same rate), `hotel_thr_lf` (label-free: the
held-out images' own pairs, `policy.label_free_threshold`), and on the held-out split with each
query's own room removed from the gallery: `hotel_fa` / `hotel_fa_lf` (different-hotel results in
the top 5 at or above it) and `hotel_conf` / `hotel_conf_lf` (first result the right hotel and above
it, of `hotel_nq`). Alone:

    python -m bench.eval_scenes_regions [--data ../shared/data/scenes] [--quick] [--json]

Region sets are cached under CACHE (keyed by pixels, masks and the embedder version); ms figures
are those measured when the cache was written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path.home() / ".cache" / "vidpipe-eval" / "regions"
# (label, room-level order, hotel-level order); sources: naive/gem/rmac global cosines,
# "reg:<grid|edges>[:c]" region Chamfer (":c" centred without labels), "sum:<a>+<b>" a + b.
REGION_VARIANTS = [
    ("regions grid, Chamfer", "reg:grid", "reg:grid"),
    ("regions grid, Chamfer, centred", "reg:grid:c", "reg:grid:c"),
    ("regions grid+edges, Chamfer", "reg:edges", "reg:edges"),
    ("regions grid+edges, Chamfer, centred", "reg:edges:c", "reg:edges:c"),
    ("R-MAC + regions grid (sum)", "sum:rmac+reg:grid", "sum:rmac+reg:grid"),
    ("two-level: R-MAC room, regions grid hotel", "rmac", "reg:grid"),
    ("two-level: R-MAC room, R-MAC hotel (reference)", "rmac", "rmac"),
    ("two-level: naive room, naive hotel (baseline)", "naive", "naive"),
]


def _key(es, version: str) -> str:
    h = hashlib.sha256(version.encode())
    for im, m in zip(es.images, es.masks):
        h.update(np.ascontiguousarray(im).tobytes())
        h.update(repr(m).encode())
    return h.hexdigest()[:24]


def region_sets(es, edges: bool, cache: Path | None = CACHE) -> tuple[list, float]:
    """RegionSet of every image of the set (people left out) and ms per image."""
    from vidpipe.scenes_regions.embed import RegionEmbedder, RegionSet

    emb = RegionEmbedder(edges=edges)
    path = Path(cache) / f"{_key(es, emb.version)}.npz" if cache else None
    if path is not None and path.is_file():
        z = np.load(path)
        splits = np.cumsum(z["counts"])[:-1]
        return [RegionSet(v) for v in np.split(z["vecs"], splits)], float(z["ms"])
    t = time.perf_counter()
    sets = [emb.embed(im, m) for im, m in zip(es.images, es.masks)]
    ms = (time.perf_counter() - t) * 1000 / max(1, len(sets))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, vecs=np.concatenate([s.vecs for s in sets]), counts=np.array([len(s) for s in sets]), ms=ms)
    return sets, ms


def hotel_negative(es, q: int, g: int) -> bool:
    """A hotel claim for g on query q is false: neither the same room nor the same hotel (an image
    with no hotel label is its own hotel; its room/place is the only positive)."""
    if es.room[q] is not None and es.room[q] == es.room[g]:
        return False
    return not (es.hotel[q] is not None and es.hotel[q] == es.hotel[g])


def hotel_threshold(scores: np.ndarray, es, rate: float) -> float:
    """Smallest score accepting at most `rate` of the calibration split's different-hotel pairs."""
    cal = np.flatnonzero(es.calib)
    negs = np.sort([scores[q, g] for q in cal for g in cal if q != g and hotel_negative(es, q, g)])[::-1]
    if not len(negs):
        return 1.0
    allowed = int(np.floor(rate * len(negs)))
    return float(np.nextafter(np.float32(negs[allowed]), np.float32(2))) if allowed < len(negs) else float(negs[-1])


def hotel_claims(scores: np.ndarray, es, thr: float) -> dict:
    """Held-out split, own room removed from each query's gallery: false hotel claims (different-hotel
    results in the top 5 at or above thr) and confirmed queries (first result the query's hotel and
    at or above thr; only queries whose hotel has another room in the split)."""
    test = np.flatnonzero(~es.calib)
    fa = conf = nq = 0
    for q in test:
        gal = np.array([g for g in test if g != q and (es.room[q] is None or es.room[g] != es.room[q])])
        if not len(gal):
            continue
        top = gal[np.argsort(-scores[q, gal], kind="stable")[:5]]
        fa += sum(1 for g in top if scores[q, g] >= thr and hotel_negative(es, q, g))
        if es.hotel[q] is not None and any(es.hotel[g] == es.hotel[q] for g in gal):
            nq += 1
            conf += int(es.hotel[top[0]] == es.hotel[q] and scores[q, top[0]] >= thr)
    return {"fa": fa, "conf": conf, "nq": nq}


def _matrices(es, vecs: dict, cache: Path | None) -> tuple[dict, dict]:
    """Score matrices by source name (diagonal -inf) and ms per image to compute each."""
    from vidpipe.scenes_regions import centre_regions, chamfer_matrix

    mats, ms = {}, {}
    for key, v in vecs.items():
        v = v.astype(np.float64)
        mats[key] = v @ v.T
        np.fill_diagonal(mats[key], -np.inf)
    for kind, edges in (("grid", False), ("edges", True)):
        sets, ms_img = region_sets(es, edges, cache)
        t = time.perf_counter()
        mats[f"reg:{kind}"] = chamfer_matrix(sets).astype(np.float64)
        n = len(sets)
        # ms per query: one query's Chamfer scores against the whole gallery (one matrix row).
        ms[f"q:reg:{kind}"] = (time.perf_counter() - t) * 1000 / max(1, n)
        t = time.perf_counter()
        mats[f"reg:{kind}:c"] = chamfer_matrix(centre_regions(sets)).astype(np.float64)
        ms[f"q:reg:{kind}:c"] = (time.perf_counter() - t) * 1000 / max(1, n)
        ms[f"reg:{kind}"] = ms[f"reg:{kind}:c"] = ms_img
    return mats, ms


def _source(name: str, mats: dict) -> np.ndarray:
    if name.startswith("sum:"):
        a, b = name[4:].split("+", 1)
        return mats[a] + mats[b]
    return mats[name]


def region_rows(es, vecs: dict, ms_img: dict, rate: float, quick: bool = False, cache: Path | None = CACHE) -> list[dict]:
    """Rows of REGION_VARIANTS on one EvalSet, in run_variants' row format plus hotel-claim fields."""
    from bench.eval_scenes import held_out_accepts, level_metrics, threshold_at_rate
    from vidpipe.extract.scenes.effnet import SCENE_MATCH_THRESHOLD
    from vidpipe.scenes_regions.policy import label_free_threshold

    mats, ms = _matrices(es, {k: vecs[k] for k in ("naive", "rmac") if k in vecs}, cache)
    test = np.flatnonzero(~es.calib)
    rows = []
    for label, room_src, hotel_src in REGION_VARIANTS:
        room_s, hotel_s = _source(room_src, mats), _source(hotel_src, mats)
        parts = set(room_src.replace("sum:", "").split("+")) | set(hotel_src.replace("sum:", "").split("+"))
        ms_i = sum(ms_img.get(p, 0.0) for p in parts if p in ms_img) + max(
            [ms.get(p, 0.0) for p in parts if p.startswith("reg:")] or [0.0])
        ms_q = max([ms.get("q:" + p, 0.0) for p in parts] or [0.0])
        thr = threshold_at_rate(room_s, es, rate)
        row = {"set": es.name, "variant": label, "ms_image": round(ms_i, 1), "ms_query": round(ms_q, 2),
               "threshold": round(thr, 4)}
        row.update({f"room_{k}": v for k, v in level_metrics(room_s, es, "room").items()})
        row.update({f"roomxh_{k}": v for k, v in level_metrics(room_s, es, "room_xh").items()})
        row.update({f"hotel_{k}": v for k, v in level_metrics(hotel_s, es, "hotel").items()})
        row.update(held_out_accepts(room_s, room_s, es, thr))
        row["fa_at_0.83"] = held_out_accepts(room_s, room_s, es, SCENE_MATCH_THRESHOLD)["false_accepts"] \
            if room_src in ("rmac", "naive") else "-"  # only meaningful on a cosine
        h_thr = hotel_threshold(hotel_s, es, rate)
        h_lf = label_free_threshold(hotel_s[np.ix_(test, test)], rate)
        hc, hl = hotel_claims(hotel_s, es, h_thr), hotel_claims(hotel_s, es, h_lf)
        row.update(hotel_thr=round(h_thr, 4), hotel_thr_lf=round(h_lf, 4), hotel_fa=hc["fa"], hotel_conf=hc["conf"],
                   hotel_nq=hc["nq"], hotel_fa_lf=hl["fa"], hotel_conf_lf=hl["conf"])
        rows.append(row)
    return rows


def markdown_hotel(rows: list[dict]) -> str:
    """The hotel-claim table of the rows that carry hotel-claim fields."""
    lines = ["Hotel-level claims (own room removed from the gallery; held-out split; top 5): threshold at the "
             "default's false-accept rate on the calibration split's different-hotel pairs (labelled) or on the "
             "held-out images' own pairs without labels (label-free).", "",
             "| set | variant | hotel R@1 | hotel R@5 | hotel mAP | hotel thr | false hotel claims | confirmed "
             "| thr label-free | false claims | confirmed |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "hotel_thr" not in r:
            continue
        n = r["hotel_n"]
        lines.append(f"| {r['set']} | {r['variant']} | {r['hotel_r1']}/{n} | {r['hotel_r5']}/{n} | {r['hotel_map']} | "
                     f"{r['hotel_thr']} | {r['hotel_fa']} | {r['hotel_conf']}/{r['hotel_nq']} | {r['hotel_thr_lf']} | "
                     f"{r['hotel_fa_lf']} | {r['hotel_conf_lf']}/{r['hotel_nq']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench import eval_scenes as ev

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ev.DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--room-set", type=Path, default=None)
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
    embedders = {k: get_scene_embedder(**ev.DESCRIPTORS[k]) for k in ("naive", "rmac")}
    for es in (ev.room_eval_set(args.quick, args.room_set), ev.scenes_eval_set(args.data)):
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
        out["rows"] += region_rows(es, vecs, ms_img, rate, quick=args.quick)
    print(json.dumps(out) if args.json else ev.markdown_variants(out) + "\n\n" + markdown_hotel(out["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
