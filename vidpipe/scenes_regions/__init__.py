"""Object-level room cues (issue 13): region descriptors over furniture/décor areas, matched
region-to-region, so that a photo can be matched to its *hotel* when its exact room is not in the
gallery (rooms of one hotel share bedspreads, lamps, art and carpets, not their layout).

    from vidpipe.scenes_regions import RegionEmbedder, chamfer_matrix, TwoLevelPolicy
    emb = RegionEmbedder()                          # EfficientNet-Lite0, the scene embedder's weights
    sets = [emb.embed(img, people_boxes) for img in images]   # RegionSet per image
    s = chamfer_matrix(centre_regions(sets))        # (n, n) hotel-level similarity
    policy = TwoLevelPolicy.calibrate(global_scores, s, rate)  # room and hotel thresholds, no labels

Modules: `proposals` (where the regions are: R-MAC grid and edge-box-like contour boxes),
`embed` (one feature map per image, one max-pooled vector per region, people cells left out),
`match` (Chamfer / max-sim similarity, label-free centring), `policy` (separate room-level and
hotel-level thresholds). Nothing here downloads or touches the case database.
"""

from __future__ import annotations

from vidpipe.scenes_regions.match import centre_regions, chamfer, chamfer_matrix
from vidpipe.scenes_regions.policy import TwoLevelPolicy, label_free_threshold
from vidpipe.scenes_regions.proposals import edge_boxes, grid_regions

__all__ = ["RegionEmbedder", "RegionSet", "TwoLevelPolicy", "centre_regions", "chamfer", "chamfer_matrix",
           "edge_boxes", "grid_regions", "label_free_threshold"]


def __getattr__(name: str):
    # The embedder imports torch; keep `import vidpipe.scenes_regions` light for the pure parts.
    if name in ("RegionEmbedder", "RegionSet"):
        from vidpipe.scenes_regions import embed

        return getattr(embed, name)
    raise AttributeError(name)
