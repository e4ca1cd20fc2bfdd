"""Where the region descriptors are pooled: a multi-scale grid (R-MAC style) and object-like boxes
from contours of the edge map (an edge-box-like proposal without a trained model).

Why both: the grid covers every part of the frame at three scales, so a bedspread or carpet that
fills a quarter of the frame gets a region of about its size; the contour boxes follow objects
(framed art, lamp shades, headboards, nightstands), whose outlines are strong closed edges.
OpenCV's `ximgproc` (selective search, EdgeBoxes) is in opencv-contrib only, which this project
does not install, so the boxes come from plain Canny + contours.

Regions on the feature map are (y0, x0, y1, x1) cell ranges, end exclusive; boxes on the image are
(x1, y1, x2, y2) pixels.
"""

from __future__ import annotations

import numpy as np

Cells = tuple[int, int, int, int]  # y0, x0, y1, x1 on the feature map (end exclusive)
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels

GRID_LEVELS = 3  # Tolias et al. (ICLR 2016) use L = 3: 1, ~6, ~12 square regions with ~40 % overlap
EDGE_SHORT_SIDE = 320  # edges are found on a copy this size (enough for furniture outlines, cheap)
EDGE_MAX_BOXES = 16
EDGE_MIN_AREA = 0.01  # share of the frame: smaller boxes cover under one feature cell at 448 px
EDGE_MAX_AREA = 0.5  # larger ones are the grid's job
EDGE_MAX_ASPECT = 5.0  # thin slivers are wall edges and skirting, not objects
EDGE_NMS_IOU = 0.6


def grid_regions(grid_h: int, grid_w: int, levels: int = GRID_LEVELS) -> list[Cells]:
    """Square R-MAC regions of a grid_h x grid_w map at `levels` scales, without duplicates
    (the same layout as the scene embedder's R-MAC, returned instead of pooled)."""
    if grid_h < 1 or grid_w < 1:
        raise ValueError(f"empty feature map {grid_h}x{grid_w}")
    out: list[Cells] = []
    for level in range(1, levels + 1):
        side = max(1, int(round(2 * min(grid_h, grid_w) / (level + 1))))
        ys = np.linspace(0, grid_h - side, max(1, level + (grid_h > grid_w))).round().astype(int)
        xs = np.linspace(0, grid_w - side, max(1, level + (grid_w > grid_h))).round().astype(int)
        for y in sorted(set(ys.tolist())):
            for x in sorted(set(xs.tolist())):
                r = (int(y), int(x), int(y) + side, int(x) + side)
                if r not in out:
                    out.append(r)
    return out


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def edge_boxes(image: np.ndarray, max_boxes: int = EDGE_MAX_BOXES, ignore: list[Box] | None = None) -> list[Box]:
    """Object-like boxes of an RGB/grey uint8 image: bounding boxes of closed edge contours, kept
    when 1-50 % of the frame and not slivers, largest contour area first, near-duplicates removed.
    Boxes mostly inside an `ignore` box (a person) are dropped. Deterministic; [] for a flat image."""
    import cv2

    if image.ndim == 3:
        grey = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    else:
        grey = np.ascontiguousarray(image)
    h, w = grey.shape[:2]
    if h < 8 or w < 8:
        return []
    s = EDGE_SHORT_SIDE / min(h, w)
    small = cv2.resize(grey, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    # Thresholds from the median (Canny's "auto" rule): works on dark night shots and bright days.
    med = float(np.median(small))
    edges = cv2.Canny(small, int(max(0, 0.66 * med)), int(min(255, 1.33 * med) + 1))
    edges = cv2.morphologyEx(edges, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    sh, sw = small.shape[:2]
    cands = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        frac = bw * bh / float(sw * sh)
        if not (EDGE_MIN_AREA <= frac <= EDGE_MAX_AREA):
            continue
        if max(bw, bh) / max(1, min(bw, bh)) > EDGE_MAX_ASPECT:
            continue
        cands.append((float(cv2.contourArea(c)), (x / s, y / s, (x + bw) / s, (y + bh) / s)))
    cands.sort(key=lambda t: (-t[0], t[1]))
    out: list[Box] = []
    for _, b in cands:
        b = (max(0.0, b[0]), max(0.0, b[1]), min(float(w), b[2]), min(float(h), b[3]))
        if ignore and any(_inside_share(b, p) > 0.5 for p in ignore):
            continue
        if all(_iou(b, o) < EDGE_NMS_IOU for o in out):
            out.append(b)
        if len(out) >= max_boxes:
            break
    return out


def _inside_share(b: Box, p: Box) -> float:
    ix = max(0.0, min(b[2], p[2]) - max(b[0], p[0]))
    iy = max(0.0, min(b[3], p[3]) - max(b[1], p[1]))
    area = (b[2] - b[0]) * (b[3] - b[1])
    return ix * iy / area if area > 0 else 0.0


def box_to_cells(box: Box, width: int, height: int, grid_h: int, grid_w: int) -> Cells:
    """The feature-map cells covering an image box (at least one cell; cells tile the image evenly)."""
    x1, y1, x2, y2 = box
    c0 = int(np.clip(np.floor(x1 / width * grid_w), 0, grid_w - 1))
    r0 = int(np.clip(np.floor(y1 / height * grid_h), 0, grid_h - 1))
    c1 = int(np.clip(np.ceil(x2 / width * grid_w), c0 + 1, grid_w))
    r1 = int(np.clip(np.ceil(y2 / height * grid_h), r0 + 1, grid_h))
    return (r0, c0, r1, c1)
