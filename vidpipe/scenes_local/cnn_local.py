"""Dense CNN local features: the cells of an EfficientNet-Lite0 feature map as local descriptors,
people's cells left out, for aggregation (ASMK / VLAD) like RootSIFT.

Why: SIFT describes texture at one point; a cell of a deep feature map describes an object part
(a lamp shade, a headboard corner) with some invariance to viewpoint and light, which is what
changes most between two photos of one room (Tolias et al., "HOW", ECCV 2020, aggregate such
features with ASMK; we use the ImageNet network as is, nothing trained). The map of block 10
(112 channels, stride 16) is the default: finer than the 1280-channel head (stride 32), so a
640x480 photo at RESOLUTION gives ~1,000 descriptors instead of ~270.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidpipe.extract.faces.base import as_rgb_uint8
from vidpipe.extract.scenes import effnet, masking

Box = tuple[float, float, float, float]

RESOLUTION = 448  # shorter side, as the global room vector (effnet.RESOLUTION)
LAYER = 10  # block index (last 112-channel block, stride 16); "head" = the 1280-channel head map


class CnnLocalExtractor:
    """Per-image (n, C) L2-normalised cell descriptors of one EfficientNet-Lite0 layer; the network
    (packaged weights, checked like the scene embedder's) is loaded on first use."""

    def __init__(self, layer: int | str = LAYER, resolution: int = RESOLUTION, device: str = "cpu") -> None:
        self.layer, self.resolution, self.device = layer, int(resolution), device
        self._path = effnet.find_weights()  # MissingDependencyError (exit 3) now, not at the first image
        self._net = None

    @property
    def version(self) -> str:
        return f"effnet-lite0:{self.layer}@{self.resolution}"

    def _forward(self, x):
        net = self._net
        y = net._swish(net._bn0(net._conv_stem(x)))
        for i, block in enumerate(net._blocks):
            y = block(y)
            if i == self.layer:
                return y
        return net._swish(net._bn1(net._conv_head(y)))

    def extract(self, image: np.ndarray, mask: Sequence[Box] | None = None) -> np.ndarray:
        """(n, C) float32 unit descriptors of the feature-map cells of an RGB uint8 image, cells
        mostly inside a `mask` box (a person) left out."""
        import cv2
        import torch

        if self._net is None:
            effnet.check_packaged_weights(self._path)
            self._net = effnet.load_network(self._path, self.device)
        im = as_rgb_uint8(image)
        h, w = im.shape[:2]
        th, tw = effnet.resized_shape(h, w, self.resolution)
        x = cv2.resize(im, (tw, th), interpolation=cv2.INTER_AREA if th < h else cv2.INTER_LINEAR)
        x = ((x.astype(np.float32) / 255.0 - effnet.MEAN) / effnet.STD).transpose(2, 0, 1)
        with torch.inference_mode():
            fmap = self._forward(torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device))[0].float()
        c, gh, gw = fmap.shape
        keep = np.ones((gh, gw), bool)
        if mask:
            sx, sy = tw / w, th / h
            scaled = [(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in mask]
            keep = masking.cell_weights(scaled, tw, th, gh, gw) > 0
        d = fmap.permute(1, 2, 0).reshape(-1, c).cpu().numpy()[keep.ravel()]
        return (d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)).astype(np.float32)
