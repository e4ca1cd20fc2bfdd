"""Face quality measures that need no model: size and sharpness.

Reviewers and the index use them to rank or drop faces that are too small or blurred to compare.
"""

from __future__ import annotations

import cv2
import numpy as np

# Side of the square grey crop sharpness is measured on. A fixed size makes the number comparable
# across faces: a small face is upsampled (low variance = little detail), a large one downsampled.
# 112 px is the input size of common face recognisers (ArcFace); our own choice, not calibrated.
SHARPNESS_SIDE = 112


def box_size_px(box: tuple[float, float, float, float]) -> float:
    """min(width, height) of an (x1, y1, x2, y2) box, in pixels."""
    x1, y1, x2, y2 = box
    return float(max(0.0, min(x2 - x1, y2 - y1)))


def sharpness(image: np.ndarray, box: tuple[float, float, float, float], side: int = SHARPNESS_SIDE) -> float:
    """Variance of the Laplacian of the grey face crop, resized to side x side (0.0 for an empty box)."""
    h, w = image.shape[:2]
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 0.0
    crop = image[y1:y2, x1:x2]
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    interp = cv2.INTER_AREA if min(crop.shape[:2]) > side else cv2.INTER_LINEAR
    grey = cv2.resize(grey, (side, side), interpolation=interp)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
