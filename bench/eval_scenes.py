"""Scene (room) retrieval on ../shared/data/scenes: the naive baseline and our descriptor, with and
without query expansion and geometric re-ranking, all measured in one run.

    python -m bench.eval_scenes [--data ../shared/data/scenes] [--json] [--quick] [--top-k K] [--sweep]
                                [--variants with|only|none] [--room-set DIR] [--cache DIR]

Variants (issue 13, `run_variants`): on the rendered room set of bench/room_set.py (room and hotel
identity; rendered once into ~/.cache/vidpipe-eval) and on DATA, the naive baseline, GeM and R-MAC
descriptors, label-free post-processing (PCA-whitening shrunk towards the identity, alpha-DBA,
alpha-QE) and the fused geometric re-rank: room-level and hotel-level R@1/R@5/mAP, a threshold
per variant at the default's false-accept rate on a calibration split, false accepts on the
held-out split, ms per image and per query.

Protocol (leave-one-out): every image of labels.csv is a query against the other 24; a hit is an
image with the same place_id. Reported per query set:
- all 25 queries with labels as given (hotel_chain_demo pairs are the same *chain*, not the same
  room: only the global look can match them);
- the 19 instance queries (the TUM office sequence and the phototourism landmarks: same place,
  other viewpoint), with mAP;
- "+rooms": the 5 rendered hotel rooms of sample_media/rooms added to queries and gallery
  (24 instance queries): the only room-level labels in the repository.
Scenarios: clean photos; "occluded": each query has a person pasted over its centre (the
astronaut of sample_media/photos, cut to a head-and-body silhouette) and its face box is known;
"all occluded" (full run only): every photo holds the same pasted person, as when one victim appears
in many rooms. Methods: naive = average pool at 224 px without masking; ours = the registered
default (`effnet-lite0`); +QE = alpha query expansion (top 2; it re-orders, the scores stay the
plain query's cosines); geometry-only = the top K re-ordered by inlier count; fused = the top K
re-ordered by `geometry.combine`.
"confirmed": instance queries whose first result is right and scores >= SCENE_MATCH_THRESHOLD;
"false accepts": different-place results in a query's top 5 at or above it (labels.csv gallery).
Timing: ms per image for embedding (both descriptors), ms per query for the flat index search and
for re-ranking the top K with features extracted at query time (nothing cached), on this machine.
The threshold block gives the largest different-place score (hotel rooms of different chains are
different places; same-chain pairs count on neither side) and the share of same-place pairs at or
above SCENE_MATCH_THRESHOLD. `--sweep` adds the pooling/resolution and masking measurements behind
the embedder's defaults.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "scenes"
ROOMS = REPO / "sample_media" / "rooms"
ASTRONAUT = REPO / "sample_media" / "photos" / "astronaut.jpg"
QE_TOP_N = 2  # neighbours averaged into the query (Radenović et al. 2019 use 1-10; few positives here)


# --------------------------------------------------------------------------- data
@dataclass
class Item:
    name: str
    place: str
    group: str
    image: np.ndarray
    extra: bool = False  # from sample_media/rooms, not labels.csv

    @property
    def instance(self) -> bool:
        return not self.place.startswith("chain:")


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def load_items(data: Path, with_rooms: bool = True) -> list[Item]:
    with open(data / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    items = [Item(r["file"], r["place_id"], r["group_type"], load_rgb(data / r["file"])) for r in rows]
    if with_rooms and ROOMS.is_dir():
        for p in sorted(ROOMS.glob("room_*.jpg")):
            items.append(Item(f"sample_media/rooms/{p.name}", "rendered:" + p.stem[:6], "rendered_room",
                              load_rgb(p), extra=True))
    return items


def paste_person(image: np.ndarray, texture: np.ndarray | None = None, cx_frac: float = 0.5,
                 head_frac: float = 0.13) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The image with a standing person (head ellipse, neck, torso with arms, legs; 7.5 heads tall)
    centred at cx_frac of the width; returns (image, face box x1, y1, x2, y2). With `texture`
    (an RGB portrait, head in its upper middle) the silhouette is cut from it, else flat skin/grey."""
    import cv2

    h, w = image.shape[:2]
    hh = head_frac * h
    hw, cx, y0 = 0.75 * hh, w * cx_frac, 0.08 * h
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (int(cx), int(y0 + hh / 2)), (int(hw / 2), int(hh / 2)), 0, 0, 360, 255, -1)
    cv2.rectangle(m, (int(cx - 0.2 * hw), int(y0 + 0.9 * hh)), (int(cx + 0.2 * hw), int(y0 + 1.2 * hh)), 255, -1)
    cv2.rectangle(m, (int(cx - 1.3 * hw), int(y0 + 1.15 * hh)), (int(cx + 1.3 * hw), int(y0 + 4.2 * hh)), 255, -1)
    cv2.rectangle(m, (int(cx - 0.9 * hw), int(y0 + 4.2 * hh)), (int(cx + 0.9 * hw), int(min(h, y0 + 7.5 * hh))), 255, -1)
    face = (cx - hw / 2, y0, cx + hw / 2, y0 + hh)
    out = image.copy()
    if texture is None:
        out[m > 0] = (110, 110, 115)
        head = np.zeros_like(m)
        cv2.ellipse(head, (int(cx), int(y0 + hh / 2)), (int(hw / 2), int(hh / 2)), 0, 0, 360, 255, -1)
        out[head > 0] = (205, 160, 130)
        return out, face
    full = np.zeros_like(image)
    th, tw = texture.shape[:2]

    def put(src, box):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        c1, r1, c2, r2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if c2 > c1 and r2 > r1:
            tex = cv2.resize(np.ascontiguousarray(src), (x2 - x1, y2 - y1))
            full[r1:r2, c1:c2] = tex[r1 - y1:r2 - y1, c1 - x1:c2 - x1]

    # Body from the lower part of the portrait, head from its upper middle (fractions fit astronaut.jpg).
    put(texture[int(0.37 * th):, int(0.12 * tw):int(0.88 * tw)], (cx - 1.3 * hw, y0 + 0.9 * hh, cx + 1.3 * hw, y0 + 7.5 * hh))
    put(texture[int(0.09 * th):int(0.39 * th), int(0.29 * tw):int(0.56 * tw)], face)
    out[m > 0] = full[m > 0]
    return out, face


# --------------------------------------------------------------------------- metrics
def ranking_metrics(rankings: dict[int, tuple[list[int], list[float]]], items: list[Item],
                    threshold: float | None = None) -> dict:
    """R@1/R@5 over all queries; R@1/R@5/mAP over instance queries; with a threshold also
    `confirmed` (instance queries whose first result is right and scores >= threshold) and
    `false_accepts` (different-place results in a top 5 scoring >= threshold; same-chain hotel rooms
    count on neither side)."""
    r1 = r5 = i1 = i5 = confirmed = false_accepts = 0
    aps = []
    for q, (order, scores) in rankings.items():
        rel = np.array([items[j].place == items[q].place for j in order])
        h1, h5 = bool(rel[:1].any()), bool(rel[:5].any())
        r1, r5 = r1 + h1, r5 + h5
        if items[q].instance:
            i1, i5 = i1 + h1, i5 + h5
            hits = np.flatnonzero(rel)
            aps.append(float(np.mean([(k + 1) / (h + 1) for k, h in enumerate(hits)])) if len(hits) else 0.0)
        if threshold is not None:
            confirmed += int(items[q].instance and h1 and scores[0] >= threshold)
            false_accepts += sum(1 for k in range(min(5, len(order))) if scores[k] >= threshold and not rel[k])
    n_inst = sum(items[q].instance for q in rankings)
    out = {"n": len(rankings), "r1": r1, "r5": r5, "n_inst": n_inst, "r1_inst": i1, "r5_inst": i5,
           "map_inst": round(float(np.mean(aps)), 3) if aps else None}
    if threshold is not None:
        out.update(confirmed=confirmed, false_accepts=false_accepts)
    return out


@dataclass
class Scenario:
    """Query vectors/features against gallery vectors/features, with a cache of verified pairs."""

    q_vecs: np.ndarray
    g_vecs: np.ndarray
    q_feats: list = field(default_factory=list)
    g_feats: list = field(default_factory=list)
    pairs: dict = field(default_factory=dict)

    def inliers(self, q: int, g: int) -> int:
        from vidpipe.extract.scenes import geometry

        if (q, g) not in self.pairs:
            self.pairs[q, g] = geometry.match_features(self.q_feats[q], self.g_feats[g])["inliers"]
        return self.pairs[q, g]


def rank(sc: Scenario, idx: list[int], method: str, top_k: int) -> dict[int, tuple[list[int], list[float]]]:
    """(ranked gallery, scores) for every query in idx (leave-one-out within idx), by `method`:
    global cosine, +QE, geometry-only (top K by inliers) or fused (top K by `geometry.combine`)."""
    from vidpipe.extract.scenes import expand_query, geometry

    out = {}
    for q in idx:
        gal = [g for g in idx if g != q]
        s = sc.g_vecs[gal] @ sc.q_vecs[q]
        # QE re-orders only: the expanded query is partly its neighbours, so its cosines run high
        # (measured: 17 false accepts at the threshold); scores stay the plain query's cosines.
        order_by = sc.g_vecs[gal] @ expand_query(sc.q_vecs[q], sc.g_vecs[gal], top_n=QE_TOP_N) if "qe" in method else s
        order = list(np.argsort(-order_by, kind="stable"))
        scores = [float(s[j]) for j in order]
        if "geom" in method or "fused" in method:
            top = order[:top_k]
            inl = [sc.inliers(q, gal[j]) for j in top]
            if "geom" in method:
                new = list(np.argsort(-np.array(inl), kind="stable"))
                top_scores = [float(s[top[k]]) for k in new]  # geometry orders; the score stays the cosine
            else:
                new, fused = geometry.fused_order([s[j] for j in top], inl)
                top_scores = [float(fused[k]) for k in new]
            order = [top[k] for k in new] + order[top_k:]
            scores = top_scores + scores[top_k:]
        out[q] = ([gal[j] for j in order], scores)
    return out


# --------------------------------------------------------------------------- run
def embed_all(embedder, images, masks=None) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    vecs = np.concatenate([embedder.embed_batch([im], [m] if masks else None) for im, m in
                           zip(images, masks or [None] * len(images))])
    return vecs, (time.perf_counter() - t) * 1000 / max(1, len(images))


def run(data: Path, quick: bool = False, top_k: int | None = None, do_sweep: bool = False) -> dict:
    import cv2
    import torch

    from indexer.float_index import FloatIndex
    from vidpipe.extract.scenes import geometry, get_scene_embedder
    from vidpipe.extract.scenes.effnet import SCENE_MATCH_THRESHOLD
    from vidpipe.extract.scenes.masking import body_boxes

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    top_k = top_k or (5 if quick else geometry.RERANK_TOP_K)
    items = load_items(data)
    base_idx = [i for i, it in enumerate(items) if not it.extra]
    all_idx = list(range(len(items)))
    naive = get_scene_embedder(resolution=224, pooling="avg", scales=(1.0,), fill="none", exclude_cells=False)
    ours = get_scene_embedder()
    images = [it.image for it in items]
    texture = load_rgb(ASTRONAUT)
    occluded = [paste_person(im, texture) for im in images]
    occ_imgs = [o[0] for o in occluded]
    bodies = [body_boxes([o[1]], im.shape[1], im.shape[0]) for im, o in zip(images, occluded)]

    timing: dict = {}
    v_naive, timing["embed_ms_naive"] = embed_all(naive, images)
    v_ours, timing["embed_ms_ours"] = embed_all(ours, images)
    t = time.perf_counter()
    feats = [geometry.extract_features(im) for im in images]
    timing["features_ms"] = (time.perf_counter() - t) * 1000 / len(images)

    rows = []

    def report(scenario_name: str, label: str, sc: Scenario, method: str) -> None:
        row = {"scenario": scenario_name, "method": label}
        m = ranking_metrics(rank(sc, base_idx, method, top_k), items, SCENE_MATCH_THRESHOLD)
        row.update(m)
        mr = ranking_metrics(rank(sc, all_idx, method, top_k), items)
        row.update({"n_inst_rooms": mr["n_inst"], "r1_inst_rooms": mr["r1_inst"], "r5_inst_rooms": mr["r5_inst"],
                    "map_inst_rooms": mr["map_inst"]})
        rows.append(row)

    clean_naive = Scenario(v_naive, v_naive, feats, feats)
    clean = Scenario(v_ours, v_ours, feats, feats)
    report("clean", "naive avg-pool 224 (baseline)", clean_naive, "global")
    report("clean", "naive + fused geometry", clean_naive, "fused")
    report("clean", "ours", clean, "global")
    report("clean", "ours + QE", clean, "qe")
    report("clean", f"ours + geometry-only top {top_k}", clean, "geom")
    report("clean", f"ours + fused top {top_k}", clean, "fused")
    report("clean", "ours + QE + fused", clean, "qe+fused")

    # Occluded queries against the clean gallery.
    o_naive, _ = embed_all(naive, occ_imgs)
    o_ours, _ = embed_all(ours, occ_imgs, bodies)
    o_feats = [geometry.extract_features(im, b) for im, b in zip(occ_imgs, bodies)]
    report("occluded query", "naive (no mask)", Scenario(o_naive, v_naive), "global")
    if not quick:
        o_unmasked, _ = embed_all(ours, occ_imgs)
        report("occluded query", "ours, no mask", Scenario(o_unmasked, v_ours), "global")
    occ = Scenario(o_ours, v_ours, o_feats, feats)
    report("occluded query", "ours, masked", occ, "global")
    report("occluded query", "ours, masked + QE", occ, "qe")
    report("occluded query", f"ours, masked + fused top {top_k}", occ, "fused")

    if not quick:  # the same person in every photo, query and gallery
        a_unmasked, _ = embed_all(ours, occ_imgs)
        a_unmasked_feats = [geometry.extract_features(im) for im in occ_imgs]
        report("all occluded", "naive (no mask)", Scenario(o_naive, o_naive), "global")
        report("all occluded", "ours, no mask", Scenario(a_unmasked, a_unmasked), "global")
        report("all occluded", "ours, no mask + fused (person keypoints kept)",
               Scenario(a_unmasked, a_unmasked, a_unmasked_feats, a_unmasked_feats), "fused")
        report("all occluded", "ours, masked", Scenario(o_ours, o_ours), "global")
        report("all occluded", "ours, masked + fused", Scenario(o_ours, o_ours, o_feats, o_feats), "fused")

    calibration = calibrate(items, clean, occ, SCENE_MATCH_THRESHOLD)

    # Search + re-rank cost per query, features extracted at query time (nothing cached).
    index = FloatIndex(ours.dim)
    index.add(np.arange(len(base_idx)), v_ours[base_idx])
    n_time = 2 if quick else 5
    t_search = t_rerank = 0.0
    for q in base_idx[:n_time]:
        t = time.perf_counter()
        _, ids = index.search(v_ours[q:q + 1], top_k + 1)
        t_search += time.perf_counter() - t
        t = time.perf_counter()
        qf = geometry.extract_features(images[q])
        for j in [int(i) for i in ids[0] if int(i) != q][:top_k]:
            geometry.match_features(qf, geometry.extract_features(images[base_idx[j]]))
        t_rerank += time.perf_counter() - t
    timing["search_ms_per_query"] = t_search * 1000 / n_time
    timing["rerank_ms_per_query"] = t_rerank * 1000 / n_time
    t = time.perf_counter()
    timed_pairs = [(i, (i + 7) % len(base_idx)) for i in base_idx[::3]]  # across sets: 500-2000 keypoints
    for i, j in timed_pairs:
        geometry.match_features(feats[i], feats[j])
    timing["match_ms_per_pair"] = (time.perf_counter() - t) * 1000 / len(timed_pairs)
    timing = {k: round(v, 1) for k, v in timing.items()}

    return {"data": str(data), "n_images": len(base_idx), "n_rooms_extra": len(items) - len(base_idx),
            "top_k": top_k, "quick": quick, "embedder": ours.weights_info(), "baseline": naive.version,
            "geometry": geometry.METHOD, "rows": rows, "timing": timing, "threshold": calibration,
            "sweep": sweep(items) if do_sweep else []}


POOLING_SWEEP = [  # (label, embedder options); "ours" is the registered default
    ("avg 224", dict(resolution=224, pooling="avg", scales=(1.0,))),
    ("GeM 224", dict(resolution=224, pooling="gem", scales=(1.0,))),
    ("R-MAC 224", dict(resolution=224, pooling="rmac", scales=(1.0,))),
    ("avg 448", dict(resolution=448, pooling="avg", scales=(1.0,))),
    ("GeM 448", dict(resolution=448, pooling="gem", scales=(1.0,))),
    ("R-MAC 448", dict(resolution=448, pooling="rmac", scales=(1.0,))),
    ("GeM 448+317", dict(resolution=448, pooling="gem", scales=(1.0, 0.7071))),
    ("R-MAC 448+317", dict(resolution=448, pooling="rmac", scales=(1.0, 0.7071))),
    ("GeM 448+317+224", dict(resolution=448, pooling="gem", scales=(1.0, 0.7071, 0.5))),
    ("R-MAC 448+317+224", dict(resolution=448, pooling="rmac", scales=(1.0, 0.7071, 0.5))),
]
MASK_SWEEP_PLACEMENTS = (0.35, 0.5, 0.65)  # person centre as a fraction of the width


def sweep(items: list[Item]) -> list[dict]:
    """Pooling/resolution on clean photos, then fill x cell exclusion on person-occluded queries
    (3 placements, astronaut texture) for the default pooling: the measurements behind the defaults."""
    from vidpipe.extract.scenes import get_scene_embedder
    from vidpipe.extract.scenes.masking import body_boxes

    every = list(range(len(items)))
    images = [it.image for it in items]
    out = []
    for label, opts in POOLING_SWEEP:
        emb = get_scene_embedder(fill="none", exclude_cells=False, **opts)
        v, ms = embed_all(emb, images)
        sc = Scenario(v, v)
        row = {"sweep": "pooling", "config": label, "embed_ms": round(ms, 1)}
        row.update(ranking_metrics(rank(sc, [i for i in every if not items[i].extra], "global", 0), items))
        row["map_inst_rooms"] = ranking_metrics(rank(sc, every, "global", 0), items)["map_inst"]
        out.append(row)
    texture = load_rgb(ASTRONAUT)
    clean = get_scene_embedder().embed_batch(images)
    placed = [[paste_person(im, texture, cx) for im in images] for cx in MASK_SWEEP_PLACEMENTS]
    for fill in ("none", "mean", "blur"):
        for cells in (False, True):
            emb = get_scene_embedder(fill=fill, exclude_cells=cells)
            maps, r1 = [], 0
            for occ in placed:
                masks = [body_boxes([f], im.shape[1], im.shape[0]) if (fill != "none" or cells) else []
                         for (im, f) in occ]
                v, _ = embed_all(emb, [o[0] for o in occ], masks)
                m = ranking_metrics(rank(Scenario(v, clean), every, "global", 0), items)
                maps.append(m["map_inst"])
                r1 += m["r1_inst"]
            out.append({"sweep": "masking", "config": f"fill={fill} cells={'on' if cells else 'off'}",
                        "map_inst_rooms": round(float(np.mean(maps)), 3),
                        "r1_inst_rooms": f"{r1}/{m['n_inst'] * len(placed)}"})
    return out


def calibrate(items: list[Item], clean: Scenario, occ: Scenario, threshold: float) -> dict:
    """Largest different-place score and same-place acceptance at `threshold`, global and fused
    (fused where the pair was among a query's verified top K, as in search), over every ordered pair
    of the 30 images, clean and occluded queries. Same-chain hotel pairs count on neither side."""
    from vidpipe.extract.scenes import geometry

    out = {"threshold": threshold}
    neg_max = {"global": -1.0, "fused": -1.0}
    pos = {"global": [], "fused": []}
    for sc in (clean, occ):
        s = sc.q_vecs @ sc.g_vecs.T
        for q in range(len(items)):
            for g in range(len(items)):
                if q == g:
                    continue
                same = items[q].place == items[g].place and items[q].instance
                if items[q].place == items[g].place and not same:
                    continue  # same chain, different room: excluded from both sides
                glob = float(s[q, g])
                # As in search: only the top-K candidates of a query are verified and fused.
                fused = geometry.combine(glob, sc.pairs[q, g]) if (q, g) in sc.pairs else glob
                if same:
                    pos["global"].append(glob)
                    pos["fused"].append(fused)
                else:
                    neg_max["global"] = max(neg_max["global"], glob)
                    neg_max["fused"] = max(neg_max["fused"], fused)
    for k in ("global", "fused"):
        p = np.array(pos[k])
        out[f"max_negative_{k}"] = round(neg_max[k], 4)
        out[f"positives_above_{k}"] = f"{int((p >= threshold).sum())}/{len(p)}"
    out["suggested"] = round(float(np.ceil(max(neg_max.values()) * 100) / 100), 2)
    return out


# --------------------------------------------------------------------------- variants (issue 13)
# Room-level and hotel-level retrieval on the rendered room set (bench/room_set.py) and on
# ../shared/data/scenes, naive baseline and descriptor variants side by side. Post-processing
# (PCA-whitening, database-side augmentation, alpha query expansion) is learned without labels on
# the set's own images, as it would be on a case.
DBA_TOP_N = 2  # neighbours averaged into each gallery vector (alpha-DBA, Radenović et al. 2019)
QE_ALPHA = 3.0
PW_EPS = 1e-6  # added to eigenvalues before whitening (relative to the largest)
# (label, descriptor, post-processing); descriptors: naive = avg 224 unmasked, gem/rmac = 448+317 masked.
VARIANTS = [
    ("naive avg 224 (baseline)", "naive", ()),
    ("GeM p=3 448+317", "gem", ()),
    ("R-MAC 448+317 (default)", "rmac", ()),
    ("R-MAC + centring", "rmac", ("centre",)),
    ("GeM + PCA-whitening (shrink 1)", "gem", ("pw",)),
    ("R-MAC + PCA-whitening (shrink 1)", "rmac", ("pw",)),
    ("R-MAC + PCA-whitening (shrink 0.1)", "rmac", ("pw0.1",)),
    ("R-MAC + aQE", "rmac", ("qe",)),
    ("R-MAC + DBA", "rmac", ("dba",)),
    ("R-MAC + DBA + aQE", "rmac", ("dba", "qe")),
    ("R-MAC + PW + DBA + aQE", "rmac", ("pw", "dba", "qe")),
    ("GeM + PW + DBA + aQE", "gem", ("pw", "dba", "qe")),
    ("R-MAC + fused geometry top 10 (search default)", "rmac", ("fused",)),
    ("GeM + fused geometry", "gem", ("fused",)),
    ("R-MAC + PW + fused geometry", "rmac", ("pw", "fused")),
    ("R-MAC + DBA + aQE + fused geometry", "rmac", ("dba", "qe", "fused")),
]
_FEATURES: dict = {}  # set name -> local features of its images (extracted once per run)
_MATCHES: dict = {}  # (set name, q, g) -> inliers
DESCRIPTORS = {
    "naive": dict(resolution=224, pooling="avg", scales=(1.0,), fill="none", exclude_cells=False),
    "gem": dict(pooling="gem", gem_p=3.0),
    "rmac": dict(pooling="rmac"),
}


@dataclass
class EvalSet:
    """Images with room identity (None: no room-level positive possible, e.g. chain-only photos),
    hotel identity (None: unknown), people masks, and a calibration/test split by room or place."""

    name: str
    images: list
    masks: list
    room: list
    hotel: list
    calib: np.ndarray  # bool per image: threshold calibration split (the rest is held out)


def room_eval_set(quick: bool, directory: Path | None = None) -> EvalSet:
    """The rendered room set (rendered into ~/.cache/vidpipe-eval on first use); calibration split = even hotels."""
    from bench import room_set
    from vidpipe.extract.scenes.masking import body_boxes

    d = directory or room_set.ensure_set(quick=quick)
    rows = room_set.load_labels(d)
    images = [load_rgb(d / r["file"]) for r in rows]
    masks = [body_boxes([r["face"]], im.shape[1], im.shape[0]) if r["face"] else [] for r, im in zip(rows, images)]
    calib = np.array([int(r["hotel_id"][-2:]) % 2 == 0 for r in rows])
    return EvalSet(f"rendered rooms {d.name}", images, masks, [r["room_id"] for r in rows],
                   [r["hotel_id"] for r in rows], calib)


def scenes_eval_set(data: Path) -> EvalSet:
    """../shared/data/scenes: instance places are the 'rooms'; hotel chains are the only 'hotels'
    (chain photos have no same-room partner); calibration split = every other place."""
    items = load_items(data, with_rooms=False)
    places = sorted({it.place for it in items})
    calib_places = set(places[::2])
    return EvalSet(f"shared scenes ({data.name})", [it.image for it in items], [[] for _ in items],
                   [it.place if it.instance else None for it in items],
                   [it.place if not it.instance else None for it in items],
                   np.array([it.place in calib_places for it in items]))


def pca_whitening(x: np.ndarray, shrink: float | None = 1.0) -> tuple[np.ndarray, object]:
    """(mean, transform) learned without labels on x (n, d): x -> (C + a I)^(-1/2) (x - mean), with C
    the sample covariance and a = shrink * its mean non-null eigenvalue; shrink None = centring only.

    Why shrunk: plain PCA-whitening learned on the n images it then ranks maps them onto a regular
    simplex (n-1 directions, all equal): every pairwise cosine becomes -1/(n-1) and the ranking is
    noise (measured: all scores -0.042 on the 25 shared images). Shrinking towards the identity
    (Ledoit-Wolf style) keeps the strong common directions damped without erasing the rest;
    Radenović et al. learn whitening on far more images than dimensions, which a case may not have."""
    mu = x.mean(0)
    if shrink is None:
        return mu, lambda y: y
    _, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    eig = s ** 2 / max(1, len(x) - 1)
    keep = eig > eig[0] * 1e-9
    v, eig = vt[keep], eig[keep]
    a = shrink * float(eig.mean())
    scale = (eig + a) ** -0.5 - a ** -0.5  # along the learned directions; a**-0.5 everywhere else

    def transform(y: np.ndarray) -> np.ndarray:
        return a ** -0.5 * y + ((y @ v.T) * scale) @ v

    return mu, transform


def l2n(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def dba(g: np.ndarray, top_n: int = DBA_TOP_N, alpha: float = QE_ALPHA) -> np.ndarray:
    """alpha database-side augmentation: each gallery vector plus its top_n gallery neighbours
    weighted by similarity**alpha, re-normalised (the vector itself is its own first neighbour)."""
    s = g @ g.T
    np.fill_diagonal(s, -np.inf)
    k = min(top_n, len(g) - 1)
    if k <= 0:
        return g
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    w = np.clip(np.take_along_axis(s, idx, axis=1), 0, None) ** alpha
    return l2n(g + np.einsum("nk,nkd->nd", w, g[idx]))


def variant_scores(vecs: np.ndarray, post: tuple) -> tuple[np.ndarray, np.ndarray, float]:
    """(order scores, reported scores, ms per query) for every ordered pair (leave-one-out).

    Whitening changes the space (reported scores are whitened cosines); DBA and QE only re-order:
    reported scores stay the plain cosine in that space (an expanded vector's cosines run high)."""
    from vidpipe.extract.scenes import expand_query

    t = time.perf_counter()
    v = vecs.astype(np.float32)
    for p in post:
        if p.startswith("pw") or p == "centre":
            mu, transform = pca_whitening(v, None if p == "centre" else float(p[2:] or 1.0))
            v = l2n(transform(v - mu))
    plain = v @ v.T
    order = plain.copy()
    n = len(v)
    if "dba" in post or "qe" in post:
        for q in range(n):
            gal = np.array([g for g in range(n) if g != q])
            g = dba(v[gal]) if "dba" in post else v[gal]
            qv = expand_query(v[q], g, top_n=QE_TOP_N, alpha=QE_ALPHA) if "qe" in post else v[q]
            order[q, gal] = g @ qv
    ms = (time.perf_counter() - t) * 1000 / max(1, n)
    np.fill_diagonal(order, -np.inf)
    np.fill_diagonal(plain, -np.inf)
    return order, plain, ms


def _ap(rel: np.ndarray) -> float:
    hits = np.flatnonzero(rel)
    return float(np.mean([(k + 1) / (h + 1) for k, h in enumerate(hits)])) if len(hits) else 0.0


def level_metrics(order: np.ndarray, es: EvalSet, level: str) -> dict:
    """R@1, R@5, mAP. room: queries with another view of their room, gallery = every other image;
    room_xh: the same without the other rooms of the query's hotel.
    hotel: queries whose hotel has another room in the set; the query's own room is removed from
    the gallery (the room is not there, can we still find its hotel?)."""
    r1 = r5 = 0
    aps = []
    for q in range(len(es.images)):
        if level in ("room", "room_xh"):
            if es.room[q] is None:
                continue
            # room_xh: other rooms of the query's hotel left out (ScanNet-style: every distractor
            # is another building), which isolates "which hotel" from "which room of it".
            gal = [g for g in range(len(es.images)) if g != q and not (
                level == "room_xh" and es.hotel[q] is not None and es.hotel[g] == es.hotel[q]
                and es.room[g] != es.room[q])]
            rel = np.array([es.room[g] == es.room[q] for g in gal])
        else:
            if es.hotel[q] is None:
                continue
            gal = [g for g in range(len(es.images)) if g != q and (es.room[q] is None or es.room[g] != es.room[q])]
            rel = np.array([es.hotel[g] == es.hotel[q] for g in gal])
        if not rel.any():
            continue
        ranked = rel[np.argsort(-order[q, gal], kind="stable")]
        r1 += bool(ranked[:1].any())
        r5 += bool(ranked[:5].any())
        aps.append(_ap(ranked))
    return {"n": len(aps), "r1": r1, "r5": r5, "map": round(float(np.mean(aps)), 3) if aps else None}


def _negative(es: EvalSet, q: int, g: int) -> bool | None:
    """True: different room/place (a false accept if accepted); False: same room; None: neither
    (same chain, no room label: counted on no side, as in calibrate)."""
    if es.room[q] is not None and es.room[q] == es.room[g]:
        return False
    if es.room[q] is None and es.hotel[q] is not None and es.hotel[q] == es.hotel[g]:
        return None
    return True


def threshold_at_rate(plain: np.ndarray, es: EvalSet, rate: float) -> float:
    """The smallest score accepting at most `rate` of the calibration split's different-room pairs."""
    negs = np.array([plain[q, g] for q in np.flatnonzero(es.calib) for g in np.flatnonzero(es.calib)
                     if q != g and _negative(es, q, g)])
    if not len(negs):
        return 1.0
    negs = np.sort(negs)[::-1]
    allowed = int(np.floor(rate * len(negs)))
    return float(np.nextafter(negs[allowed], np.float32(2))) if allowed < len(negs) else float(negs[-1])


def held_out_accepts(order: np.ndarray, plain: np.ndarray, es: EvalSet, thr: float) -> dict:
    """On the held-out split only (queries and gallery): false accepts = different-room results in a
    query's top 5 scoring >= thr (fa_other_hotel: of those, not even the same
    hotel/chain); confirmed = queries whose first result is its room and scores >= thr."""
    test = np.flatnonzero(~es.calib)
    fa = fa_other = conf = nq = 0
    for q in test:
        gal = np.array([g for g in test if g != q])
        top = gal[np.argsort(-order[q, gal], kind="stable")[:5]]
        wrong = [g for g in top if plain[q, g] >= thr and _negative(es, q, g)]
        fa += len(wrong)
        fa_other += sum(1 for g in wrong if es.hotel[q] is None or es.hotel[g] != es.hotel[q])
        if es.room[q] is not None and any(es.room[g] == es.room[q] for g in gal):
            nq += 1
            conf += int(es.room[top[0]] == es.room[q] and plain[q, top[0]] >= thr)
    return {"false_accepts": fa, "fa_other_hotel": fa_other, "confirmed": conf, "n_confirmable": nq}


def variant_row(es: EvalSet, label: str, order: np.ndarray, plain: np.ndarray, rate: float,
                ms_image: float, ms_query: float) -> dict:
    """One table row: the variant's threshold held at the default's false-accept ``rate`` on the
    calibration split, room / room-excluding-own-hotel / hotel metrics, and held-out accepts at that
    threshold and at the product's SCENE_MATCH_THRESHOLD."""
    from vidpipe.extract.scenes.effnet import SCENE_MATCH_THRESHOLD

    thr = threshold_at_rate(plain, es, rate)
    row = {"set": es.name, "variant": label, "ms_image": round(ms_image, 1), "ms_query": round(ms_query, 2),
           "threshold": round(thr, 4)}
    row.update({f"room_{k}": v for k, v in level_metrics(order, es, "room").items()})
    row.update({f"roomxh_{k}": v for k, v in level_metrics(order, es, "room_xh").items()})
    row.update({f"hotel_{k}": v for k, v in level_metrics(order, es, "hotel").items()})
    row.update(held_out_accepts(order, plain, es, thr))
    row["fa_at_0.83"] = held_out_accepts(order, plain, es, SCENE_MATCH_THRESHOLD)["false_accepts"]
    return row


def cached_embed(cache: Path | None, emb, es: EvalSet, masks) -> tuple[np.ndarray, float]:
    """embed_all, or its stored result for the same pixels, masks and embedder version (`--cache`:
    for iterating on post-processing; ms/image is then the one measured when it was stored)."""
    import hashlib

    if cache is None:
        return embed_all(emb, es.images, masks)
    h = hashlib.sha256(emb.version.encode())
    for im, m in zip(es.images, masks or [None] * len(es.images)):
        h.update(np.ascontiguousarray(im).tobytes())
        h.update(repr(m).encode())
    path = Path(cache) / f"{h.hexdigest()[:24]}.npz"
    if path.is_file():
        z = np.load(path)
        return z["vecs"], float(z["ms"])
    vecs, ms = embed_all(emb, es.images, masks)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, vecs=vecs, ms=ms)
    return vecs, ms


def fused_scores(order: np.ndarray, plain: np.ndarray, es: EvalSet, top_k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The top K of each query re-ordered by `geometry.combine` (RootSIFT + MAGSAC inliers, people
    masked), as `search --mode scene` does; their reported score becomes the fused one. Returns
    (order, scores, ms per query: features of the query and its K candidates extracted and matched)."""
    from vidpipe.extract.scenes import geometry

    n = len(es.images)
    if es.name not in _FEATURES:
        t = time.perf_counter()
        feats = [geometry.extract_features(im, m or None) for im, m in zip(es.images, es.masks)]
        _FEATURES[es.name] = feats, (time.perf_counter() - t) * 1000 / max(1, n)
    feats, feat_ms = _FEATURES[es.name]
    order2, plain2 = order.copy(), plain.copy()
    match_s, n_match = 0.0, 0
    for q in range(n):
        top = np.argsort(-order[q], kind="stable")[:top_k]
        inl = []
        for g in top:
            if (es.name, q, g) not in _MATCHES:
                t = time.perf_counter()
                _MATCHES[es.name, q, g] = geometry.match_features(feats[q], feats[g])["inliers"]
                match_s, n_match = match_s + time.perf_counter() - t, n_match + 1
            inl.append(_MATCHES[es.name, q, g])
        new, fused = geometry.fused_order([plain[q, g] for g in top], inl)
        for rank_pos, k in enumerate(new):
            order2[q, top[k]] = 1e3 - rank_pos  # verified candidates first, in fused order
            plain2[q, top[k]] = fused[k]
    match_ms = _FEATURES.setdefault((es.name, "match_ms"), match_s * 1000 / n_match if n_match else 0.0)
    # Cost per query as in search: features of the query and of its K candidates, K matches.
    return order2, plain2, (1 + top_k) * feat_ms + top_k * match_ms


def run_variants(data: Path, quick: bool = False, room_dir: Path | None = None, cache: Path | None = None) -> dict:
    """Every VARIANTS row on both sets; thresholds re-derived per variant at the false-accept rate the
    default descriptor has at SCENE_MATCH_THRESHOLD on the calibration split."""
    import cv2
    import torch

    from vidpipe.extract.scenes import get_scene_embedder
    from vidpipe.extract.scenes.effnet import SCENE_MATCH_THRESHOLD

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    sets = [room_eval_set(quick, room_dir), scenes_eval_set(data)]
    embedders = {k: get_scene_embedder(**opts) for k, opts in DESCRIPTORS.items()}
    out = {"sets": [], "rows": [], "reference_threshold": SCENE_MATCH_THRESHOLD}
    for es in sets:
        vecs, ms_img = {}, {}
        for key, emb in embedders.items():
            masks = es.masks if key != "naive" else None  # the baseline sees the person
            vecs[key], ms_img[key] = cached_embed(cache, emb, es, masks)
        # The false-accept rate to hold: the default descriptor's at today's threshold, calibration split.
        _, ref_plain, _ = variant_scores(vecs["rmac"], ())
        cal = np.flatnonzero(es.calib)
        negs = [ref_plain[q, g] for q in cal for g in cal if q != g and _negative(es, q, g)]
        rate = float(np.mean(np.array(negs) >= SCENE_MATCH_THRESHOLD)) if negs else 0.0
        out["sets"].append({"name": es.name, "n_images": len(es.images), "n_calib": int(es.calib.sum()),
                            "n_people": sum(bool(m) for m in es.masks), "fa_rate": round(rate, 5),
                            "n_calib_negatives": len(negs)})
        for label, key, post in VARIANTS:
            order, plain, ms_q = variant_scores(vecs[key], tuple(p for p in post if p != "fused"))
            if "fused" in post:
                order, plain, ms_q = fused_scores(order, plain, es, 5 if quick else 10)
            out["rows"].append(variant_row(es, label, order, plain, rate, ms_img[key], ms_q))
        # Local evidence (VLAD/ASMK over RootSIFT, fusion, verification): bench/eval_scenes_local.py.
        from bench.eval_scenes_local import local_rows
        out["rows"] += local_rows(es, vecs, ms_img, rate, quick=quick)
        # Object-level cues (region Chamfer) and hotel-level claims: bench/eval_scenes_regions.py.
        from bench.eval_scenes_regions import region_rows
        out["rows"] += region_rows(es, vecs, ms_img, rate, quick=quick)
    return out


def markdown_variants(res: dict) -> str:
    lines = ["Variants (issue 13): room level = another view of the same room; hotel level = another room of the "
             "same hotel (on shared scenes: same chain) with the query's own room removed. Threshold per variant: the score at which the calibration "
             "split's different-room pairs are accepted at the rate the default has at "
             f"{res['reference_threshold']}; false accepts/confirmed on the held-out split (top 5).", ""]
    for s in res["sets"]:
        lines.append(f"- {s['name']}: {s['n_images']} images ({s['n_people']} with a person), calibration split "
                     f"{s['n_calib']}, false-accept rate held {s['fa_rate']} of {s['n_calib_negatives']} pairs")
    lines += ["", "| set | variant | room R@1 | room R@5 | room mAP | room R@1 excl. own hotel | hotel R@1 | hotel R@5 | hotel mAP | threshold "
              "| false accepts held out (other hotel) | confirmed | FA at 0.83 | ms/image | ms/query |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        hotel = (f"{r['hotel_r1']}/{r['hotel_n']} | {r['hotel_r5']}/{r['hotel_n']} | {r['hotel_map']}"
                 if r["hotel_n"] else "- | - | -")
        lines.append(f"| {r['set']} | {r['variant']} | {r['room_r1']}/{r['room_n']} | {r['room_r5']}/{r['room_n']} | "
                     f"{r['room_map']} | {r['roomxh_r1']}/{r['roomxh_n']} | {hotel} | {r['threshold']} | {r['false_accepts']} ({r['fa_other_hotel']}) | "
                     f"{r['confirmed']}/{r['n_confirmable']} | {r['fa_at_0.83']} | {r['ms_image']} | {r['ms_query']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- output
def markdown(result: dict) -> str:
    lines = [f"Scene retrieval on {result['data']} ({result['n_images']} images; +rooms: "
             f"+{result['n_rooms_extra']} rendered rooms), re-rank top {result['top_k']}",
             "", "| scenario | method | R@1 all | R@5 all | R@1 inst | R@5 inst | mAP inst | R@1 +rooms | R@5 +rooms "
             "| confirmed | false accepts |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['scenario']} | {r['method']} | {r['r1']}/{r['n']} | {r['r5']}/{r['n']} | "
                     f"{r['r1_inst']}/{r['n_inst']} | {r['r5_inst']}/{r['n_inst']} | {r['map_inst']} | "
                     f"{r['r1_inst_rooms']}/{r['n_inst_rooms']} | {r['r5_inst_rooms']}/{r['n_inst_rooms']} | "
                     f"{r['confirmed']}/{r['n_inst']} | {r['false_accepts']} |")
    t = result["timing"]
    lines += ["", "| timing (this machine) | ms |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in t.items()]
    c = result["threshold"]
    lines += ["", f"Threshold {c['threshold']}: largest different-place score global {c['max_negative_global']}, "
              f"fused {c['max_negative_fused']} (suggested {c['suggested']}); same-place pairs at or above it: "
              f"global {c['positives_above_global']}, fused {c['positives_above_fused']}.",
              f"Embedder: {result['embedder']['embedder']} {result['embedder']['version']}; baseline {result['baseline']}; "
              f"geometry {result['geometry']}."]
    pooling = [r for r in result["sweep"] if r["sweep"] == "pooling"]
    if pooling:
        lines += ["", "| pooling sweep (clean, no re-ranking) | R@1 all | R@5 all | R@1 inst | R@5 inst | mAP inst | "
                  "mAP inst +rooms | ms/image |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['config']} | {r['r1']}/{r['n']} | {r['r5']}/{r['n']} | {r['r1_inst']}/{r['n_inst']} | "
                  f"{r['r5_inst']}/{r['n_inst']} | {r['map_inst']} | {r['map_inst_rooms']} | {r['embed_ms']} |" for r in pooling]
    masks = [r for r in result["sweep"] if r["sweep"] == "masking"]
    if masks:
        lines += ["", "| masking sweep (occluded queries, 3 placements, +rooms) | R@1 inst | mAP inst |", "|---|---|---|"]
        lines += [f"| {r['config']} | {r['r1_inst_rooms']} | {r['map_inst_rooms']} |" for r in masks]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quick", action="store_true", help="CI size: fewer scenarios, top 5, fewer timed queries")
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--sweep", action="store_true",
                    help="also the pooling/resolution and masking sweeps behind the defaults (~10 min on 2 cores)")
    ap.add_argument("--variants", choices=("with", "only", "none"), default="with",
                    help="issue-13 variant table on the rendered room set and DATA (default: after the main table)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="store/reuse variant vectors here (keyed by pixels, masks, embedder version)")
    ap.add_argument("--room-set", type=Path, default=None,
                    help="rendered room set directory (default: rendered by bench.room_set into ~/.cache/vidpipe-eval)")
    args = ap.parse_args(argv)
    if not (args.data / "labels.csv").is_file():
        print(f"no labels.csv under {args.data}", file=sys.stderr)
        return 2
    result = run(args.data, quick=args.quick, top_k=args.top_k, do_sweep=args.sweep) if args.variants != "only" else {}
    if args.variants != "none":
        result["variants"] = run_variants(args.data, quick=args.quick, room_dir=args.room_set,
                                         cache=args.cache)
    if args.json:
        print(json.dumps(result))
    else:
        parts = [markdown(result)] if args.variants != "only" else []
        if args.variants != "none":
            from bench.eval_scenes_regions import markdown_hotel
            parts += [markdown_variants(result["variants"]), markdown_hotel(result["variants"]["rows"])]
        print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
