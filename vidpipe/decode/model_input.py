"""The model input: the one recipe that turns an image into what a detector or an embedder sees.

Ingest (the model stage's input, `vidpipe.pipeline.image_task`) and search (the query,
`vidpipe.search.query_prep`; scene candidates, `vidpipe.search.scenes`) must prepare pixels the
same way, or a query and its evidence would be compared through different images:

1. decode under the allowlist and pixel budget, JPEG DCT reduction keeping at least ``min_side``
   per side (`vidpipe.decode.image.decode_image`);
2. apply the EXIF orientation: models see the photo upright, as a person does (hashes keep the
   stored pixels, see `vidpipe.decode.image`);
3. downscale so the long side is at most ``max_side`` (never upscale), RGB uint8;
4. ``scale`` = these pixels' width / the full-resolution upright width, so boxes and points found
   on the copy map back to the full-resolution upright image, where they are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from vidpipe.decode.image import DEFAULT_MAX_PIXELS, DecodedImage, decode_image

FACE_IMAGE_MAX_SIDE = 1600   # crops for the embedder come from this copy; detection downsizes further
FACE_DECODE_MIN_SIDE = 1024  # JPEG DCT reduction keeps at least this much per side for faces
_TRANSPOSED = (5, 6, 7, 8)   # EXIF orientations that swap width and height


@dataclass
class ModelInput:
    """Upright RGB pixels for a model and how they map to the full-resolution upright image."""

    pixels: np.ndarray  # RGB uint8 HxWx3
    scale: float        # pixels width / full-resolution upright width


def downscale(upright: Image.Image, max_side: int | None) -> Image.Image:
    """``upright`` with its long side at most ``max_side`` (bilinear; never upscales; None: as is)."""
    if max_side is None:
        return upright
    scale = min(1.0, max_side / max(upright.size))
    if scale < 1.0:
        upright = upright.resize((max(1, round(upright.width * scale)), max(1, round(upright.height * scale))),
                                 Image.Resampling.BILINEAR)
    return upright


def from_decoded(decoded: DecodedImage, max_side: int | None = FACE_IMAGE_MAX_SIDE) -> ModelInput:
    """Steps 2-4 of the recipe for an image already decoded (``max_side`` None: no downscale)."""
    full_width = decoded.height if decoded.orientation in _TRANSPOSED else decoded.width
    pixels = np.asarray(downscale(decoded.upright(), max_side).convert("RGB"), dtype=np.uint8)
    return ModelInput(pixels, pixels.shape[1] / full_width)


def model_input(data: bytes, label: str, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                min_side: int = FACE_DECODE_MIN_SIDE, max_side: int | None = FACE_IMAGE_MAX_SIDE) -> ModelInput:
    """The whole recipe for an image's bytes of sniffed ``label``; `DecodeFailure` when it cannot
    be decoded. Runs where untrusted bytes may be parsed: in a sandboxed worker."""
    return from_decoded(decode_image(data, label, min_side=min_side, max_pixels=max_pixels), max_side)
