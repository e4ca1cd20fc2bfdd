"""Scene (room) retrieval on ../shared/data/scenes: the naive baseline and our descriptor, with and
without query expansion and geometric re-ranking, all measured in one run.

    python -m bench.eval_scenes [--data ../shared/data/scenes] [--json] [--quick] [--top-k K] [--sweep]

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
    args = ap.parse_args(argv)
    if not (args.data / "labels.csv").is_file():
        print(f"no labels.csv under {args.data}", file=sys.stderr)
        return 2
    result = run(args.data, quick=args.quick, top_k=args.top_k, do_sweep=args.sweep)
    print(json.dumps(result) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
