"""FaceNet embedder: facenet-pytorch's InceptionResnetV1 (512-d) from a local state_dict file.

Weights are looked up by vidpipe.models.weights.find_facenet_weights (argument or
$VIDPIPE_FACENET_WEIGHTS, then VGGFace2 in $TORCH_HOME/checkpoints, then the CASIA-WebFace file
converted at set-up). The lookup runs when the embedder is built, so a missing file stops a run at
start-up; the network itself loads on first use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidpipe.errors import MissingDependencyError
from vidpipe.extract.faces.align import FACE_SIZE, MARGIN, crop_box, standardize
from vidpipe.extract.faces.base import DetectedFace, FaceEmbedder, as_rgb_uint8
from vidpipe.models.weights import WeightsFile, find_facenet_weights, training_data_from_logits

# Faces per forward pass: ~21 ms/face on 2 CPU cores either way (MODELS.md); 32 x 3 x 160 x 160 floats
# is 10 MB of input, small enough for any device.
BATCH_SIZE = 32


def load_facenet(path, device: str = "cpu"):
    """InceptionResnetV1 (no classifier) loaded strictly from a state_dict file.

    A file that also carries the training classifier (`logits.*`, as facenet-pytorch's VGGFace2 file
    does) has exactly those keys dropped; any other missing or unexpected key is an error. Returns
    (model in eval mode, training-set name read from the logits size or None).
    """
    import torch
    from facenet_pytorch import InceptionResnetV1

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt / not a torch file: same remedy as a missing one
        raise MissingDependencyError(f"FaceNet weights file {path} could not be read ({e}); re-create it") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    logits = {k: v for k, v in state.items() if k.startswith("logits.")}
    trained_on = training_data_from_logits(logits["logits.weight"].shape[0]) if "logits.weight" in logits else None
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    model = InceptionResnetV1(pretrained=None, classify=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise MissingDependencyError(f"{path} is not an InceptionResnetV1 state_dict: {e}") from e
    return model.to(torch.device(device)).eval(), trained_on


class FaceNetEmbedder(FaceEmbedder):
    """512-d FaceNet embeddings of box crops (margin MARGIN at 160 px), L2-normalised."""

    name = "facenet"
    dim = 512

    def __init__(self, device: str = "cpu", weights: str | None = None, margin: float = MARGIN,
                 batch_size: int = BATCH_SIZE):
        super().__init__(device)
        self.margin = float(margin)
        self.batch_size = max(1, int(batch_size))
        self.weights: WeightsFile = find_facenet_weights(weights)  # exit 3 now, before any decoding
        self._trained_on: str | None = None

    def _load(self):
        """InceptionResnetV1 on the device (and the training set its logits name, if any)."""
        model, self._trained_on = load_facenet(self.weights.path, self.device)
        return model

    def weights_info(self) -> dict:
        info = self.weights.info()
        if self._trained_on and info["training_data"].startswith("unknown"):
            info["training_data"] = self._trained_on
        info["dim"] = self.dim
        info["alignment"] = {"method": "box+margin, no rotation", "size": FACE_SIZE, "margin": self.margin,
                             "standardization": "(x-127.5)/128"}
        return info

    def crops(self, image: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        """The uint8 160x160 RGB crops the network sees, n x 160 x 160 x 3 (for review thumbnails too)."""
        image = as_rgb_uint8(image)
        out = np.zeros((len(faces), FACE_SIZE, FACE_SIZE, 3), np.uint8)
        for i, f in enumerate(faces):
            out[i] = crop_box(image, f.box, FACE_SIZE, self.margin)
        return out

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings of ready-made uint8 crops (n x 160 x 160 x 3), (n, 512) float32, L2-normalised."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        import torch

        model = self.load()
        out = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                x = torch.from_numpy(standardize(crops[start:start + self.batch_size])).to(self.device)
                out.append(model(x).float().cpu().numpy())
        emb = np.concatenate(out).astype(np.float32, copy=False)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)  # model normalises; keep exact
        return emb

    def _predict(self, items: Sequence[tuple[np.ndarray, Sequence[DetectedFace]]]) -> list[np.ndarray]:
        per_item = [self.crops(image, faces) for image, faces in items]
        counts = [len(c) for c in per_item]
        if sum(counts) == 0:
            return [np.zeros((0, self.dim), np.float32) for _ in items]
        emb = self.embed_crops(np.concatenate(per_item))
        bounds = np.cumsum([0, *counts])
        return [emb[bounds[i]:bounds[i + 1]] for i in range(len(items))]
