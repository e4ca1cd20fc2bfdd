"""The face plug-in contract: what a detector returns and what an embedder must do.

Detectors and embedders register by name (see `vidpipe.extract.faces`); every registered plug-in
passes the shared suite in tests/test_faces_models.py. Both are `vidpipe.models.base.InferenceModel`s:
models load lazily on first use (`load()`, under a lock), so building a plug-in is cheap; an
embedder checks at construction that its weights file exists, so a missing file fails the run at
start-up (exit 3), not after hours of decoding. Subclasses implement `_load()` and `_predict()`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from vidpipe.models.base import InferenceModel

Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an image.

    box: x1, y1, x2, y2 in the original image's pixel coordinates, clipped to the image.
    landmarks: 5 points (left eye, right eye, nose, left and right mouth corner, as seen in the
    image), or None when the detector gives none.
    size_px: min(box width, box height). sharpness: variance of the Laplacian of the grey face
    crop at a fixed size (`quality.sharpness`); higher = sharper.
    """

    box: Box
    det_score: float
    landmarks: tuple[Point, ...] | None
    size_px: float
    sharpness: float

    def to_dict(self) -> dict:
        """JSON-ready dict (lists instead of tuples)."""
        d = asdict(self)
        d["box"] = list(self.box)
        d["landmarks"] = [list(p) for p in self.landmarks] if self.landmarks is not None else None
        return d


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Check/convert an image to contiguous RGB uint8 HxWx3 (grey and RGBA are converted, others refused)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an RGB image HxWx3, got shape {image.shape}")
    return np.ascontiguousarray(image)


class FaceDetector(InferenceModel):
    """Finds faces. Subclasses set `name`/`version` and implement `_load`, `_predict(images)` and
    `weights_info`."""

    role: ClassVar[str] = "face_detector"

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces in each image (RGB uint8 HxWx3; sizes may differ), one list per image, best first."""
        return self.predict(images)

    @abstractmethod
    def _predict(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        """`detect_batch` with the model loaded."""

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in one image."""
        return self.detect_batch([image])[0]


class FaceEmbedder(InferenceModel):
    """Turns detected faces into L2-normalised vectors; higher inner product = more similar.

    Subclasses set `name`/`dim` and implement `_load`, `_predict(items)` and `weights_info`."""

    role: ClassVar[str] = "face_embedder"
    dim: ClassVar[int]

    def embed_batch(self, items: Sequence[tuple[np.ndarray, Sequence[DetectedFace]]]) -> list[np.ndarray]:
        """For each (image, faces) item an (n_faces, dim) float32 array, batched across all items."""
        return self.predict(items)

    @abstractmethod
    def _predict(self, items: Sequence[tuple[np.ndarray, Sequence[DetectedFace]]]) -> list[np.ndarray]:
        """`embed_batch` with the model loaded."""

    def embed_faces(self, image: np.ndarray, faces: Sequence[DetectedFace]) -> np.ndarray:
        """(len(faces), dim) float32, L2-normalised; the embedder does its own alignment and crop."""
        return self.embed_batch([(image, faces)])[0]


def detect_in_size_groups(images: Sequence[np.ndarray], downscale, run_stack, to_faces,
                          batch_size: int) -> list[list[DetectedFace]]:
    """The batching both detectors share: detect on downscaled copies, one forward pass per group
    of equal-size copies (at most ``batch_size`` each), faces mapped back per original image.

    ``downscale(image) -> (copy, sx, sy)``; ``run_stack(stack) -> per-image detection tuples``;
    ``to_faces(original, *detections, sx, sy) -> list[DetectedFace]``.
    """
    from collections import defaultdict

    originals = [as_rgb_uint8(im) for im in images]
    copies = [downscale(im) for im in originals]
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (small, _, _) in enumerate(copies):
        groups[small.shape[:2]].append(i)
    results: list[list[DetectedFace]] = [[] for _ in originals]
    for idxs in groups.values():
        for start in range(0, len(idxs), batch_size):
            chunk = idxs[start:start + batch_size]
            raw = run_stack(np.stack([copies[i][0] for i in chunk]))
            for i, detections in zip(chunk, raw, strict=True):
                results[i] = to_faces(originals[i], *detections, copies[i][1], copies[i][2])
    return results


def downscale_copy(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float, float]:
    """A detection copy whose longer side is at most ``max_side`` (never upscaled), and the (x, y)
    factors from its pixels back to the original's."""
    import cv2

    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, 1.0, 1.0
    s = max_side / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA), w / nw, h / nh

