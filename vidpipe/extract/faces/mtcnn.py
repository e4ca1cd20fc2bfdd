"""MTCNN face detector (facenet-pytorch 2.5.3 or 2.6.0: same code; P/R/O-net weights ship inside its wheel).

Batched across images: facenet-pytorch's `detect_face` runs one pyramid over a stack of
same-size images. Each image is first downscaled so its longer side is at most `max_side`
(never upscaled); images that end up the same size share a forward pass, and boxes and
landmarks are mapped back to the original image's coordinates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import metadata

import numpy as np

from vidpipe.extract.faces.base import DetectedFace, FaceDetector, detect_in_size_groups, downscale_copy
from vidpipe.extract.faces.quality import box_size_px, sharpness
from vidpipe.models.weights import mtcnn_weight_files, sha256_file

# Keep faces whose O-net probability is >= 0.9: facenet-pytorch's own keep threshold
# (MTCNN.select_boxes(threshold=0.9)). On ../shared/data 0.7, 0.9 and 0.95 found the same 44 of 45
# labelled group faces with no extra boxes (bench/eval_faces.py --detect-sweep).
MIN_DET_SCORE = 0.9
# Detect on a copy whose longer side is <= 1024 px: on ../shared/data recall on group_photos.csv and
# enrolment of the identity photos were the same as at full resolution (and at 640 px), and detection
# took 28 s instead of 73 s for 79 photos (bench/eval_faces.py --detect-sweep).
MAX_SIDE = 1024
# Smallest face searched for, in pixels of the detection copy (facenet-pytorch default, 20).
MIN_FACE_PX = 20
# P/R/O-net stage thresholds and pyramid factor: facenet-pytorch defaults (MTCNN paper values).
STAGE_THRESHOLDS = (0.6, 0.7, 0.7)
PYRAMID_FACTOR = 0.709
# Images per forward pass; bounds memory (a 1024x768 stack of 8 is ~75 MB of float32 per pyramid level).
BATCH_SIZE = 8
# The model name every case has stored since the first ingest (key: MODEL_NAME@sha256[:16] of the three
# nets). Fixed, not read from the installed facenet-pytorch: 2.5.3 and 2.6.0 ship the same detect code
# and the same P/R/O-net bytes, and a new name would change every stored stage version (a resumed
# ingest would redo all faces). The installed release is recorded beside it ("package").
MODEL_NAME = "mtcnn-facenet-pytorch-2.6.0"


class MTCNNDetector(FaceDetector):
    """MTCNN from facenet-pytorch, batched, with 5-point landmarks and quality measures."""

    name = "mtcnn"
    version = "1"  # our recipe (thresholds, downscale, batching); the package release is weights_info()["package"]

    def __init__(self, device: str = "cpu", min_score: float = MIN_DET_SCORE, max_side: int | None = MAX_SIDE,
                 min_face_px: int = MIN_FACE_PX, batch_size: int = BATCH_SIZE):
        super().__init__(device)
        self.min_score = float(min_score)
        self.max_side = max_side
        self.min_face_px = int(min_face_px)
        self.batch_size = max(1, int(batch_size))

    def _load(self):
        """(P-net, R-net, O-net) on the device; facenet-pytorch reads their weights from its wheel."""
        import torch
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

        mtcnn_weight_files()  # a wheel without its data files: exit 3 naming them, not a torch error
        return tuple(net().to(torch.device(self.device)).eval() for net in (PNet, RNet, ONet))

    def weights_info(self) -> dict:
        files = mtcnn_weight_files()
        digests = {n: sha256_file(p) for n, p in files.items()}
        combined = hashlib.sha256("".join(digests[n] for n in ("pnet", "rnet", "onet")).encode()).hexdigest()
        try:
            pkg = metadata.version("facenet-pytorch")
        except metadata.PackageNotFoundError:
            pkg = "unknown"
        return {
            "model": MODEL_NAME,
            "package": f"facenet-pytorch-{pkg}",
            # sha256 over the hex digests of pnet, rnet, onet (in that order); per-file digests below.
            "weights_sha256": combined,
            "weights_files": {n: {"path": str(p), "sha256": digests[n]} for n, p in files.items()},
            "licence": "MIT (facenet-pytorch; weights ported from kpzhang93/MTCNN_face_detection_alignment)",
            "params": {"min_score": self.min_score, "max_side": self.max_side, "min_face_px": self.min_face_px,
                       "stage_thresholds": list(STAGE_THRESHOLDS), "pyramid_factor": PYRAMID_FACTOR},
        }

    def _downscale(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Detection copy and the (x, y) factors from its pixels back to the original's."""
        return downscale_copy(image, self.max_side)

    def _run(self, stack: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(boxes n x 5 [x1,y1,x2,y2,p], points n x 5 x 2) per image of a same-size stack."""
        import torch
        from facenet_pytorch.models.utils.detect_face import detect_face

        if min(stack.shape[1:3]) < self.min_face_px:  # no pyramid level fits; detect_face would fail
            return [(np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))] * len(stack)
        pnet, rnet, onet = self.load()
        with torch.inference_mode():
            boxes, points = detect_face(stack, self.min_face_px, pnet, rnet, onet, list(STAGE_THRESHOLDS),
                                        PYRAMID_FACTOR, torch.device(self.device))
        # Under numpy 2 these are object arrays of per-image arrays: make them plain float32.
        return [(np.asarray(b, dtype=np.float32).reshape(-1, 5), np.asarray(p, dtype=np.float32).reshape(-1, 5, 2))
                for b, p in zip(boxes, points, strict=True)]

    def _predict(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        return detect_in_size_groups(images, self._downscale, self._run, self._to_faces, self.batch_size)

    def _to_faces(self, image: np.ndarray, boxes: np.ndarray, points: np.ndarray, sx: float, sy: float
                  ) -> list[DetectedFace]:
        h, w = image.shape[:2]
        faces = []
        for b, pts in zip(boxes, points, strict=True):
            score = float(b[4])
            if not np.isfinite(score) or score < self.min_score:
                continue
            x1, x2 = np.clip([b[0] * sx, b[2] * sx], 0, w)
            y1, y2 = np.clip([b[1] * sy, b[3] * sy], 0, h)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            box = (float(x1), float(y1), float(x2), float(y2))
            landmarks = tuple((float(px * sx), float(py * sy)) for px, py in pts)
            faces.append(DetectedFace(box=box, det_score=score, landmarks=landmarks,
                                      size_px=box_size_px(box), sharpness=sharpness(image, box)))
        faces.sort(key=lambda f: -f.det_score)
        return faces
