"""One model-input recipe for ingest and search (`vidpipe.decode.model_input`).

Ingest's face stage input, a face/scene search query and a scene candidate must be the same
upright, downscaled pixels for the same photo, or a query would be compared with its evidence
through two different images. The photos are generated here: a large, EXIF-rotated JPEG (the
case where orientation, width/height swap and downscaling all matter) and a small PNG.
"""

from __future__ import annotations

import ast
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from vidpipe.decode.image import decode_image
from vidpipe.decode.model_input import FACE_IMAGE_MAX_SIDE, from_decoded, model_input
from vidpipe.pipeline.image_task import _face_input
from vidpipe.search.query_prep import QueryTask, prepare_query_task

REPO = Path(__file__).resolve().parents[1]


def _photo(width: int, height: int, fmt: str, orientation: int | None = None) -> bytes:
    """A gradient with a marked corner, so a wrong rotation or flip changes the pixels."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)),
                    np.full((height, width), 90, np.float32)], axis=2).astype(np.uint8)
    rgb[: height // 5, : width // 7] = (255, 0, 0)
    img = Image.fromarray(rgb)
    buf = io.BytesIO()
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(buf, fmt, exif=exif, quality=92)
    else:
        img.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(("width", "height", "fmt", "orientation"),
                         [(2400, 1800, "JPEG", 6), (2400, 1800, "JPEG", 1), (640, 480, "PNG", None)])
def test_ingest_and_search_get_the_same_model_input(width, height, fmt, orientation):
    data = _photo(width, height, fmt, orientation)
    label = "JPEG" if fmt == "JPEG" else "PNG"
    prepared = model_input(data, label)

    rotated = orientation in (5, 6, 7, 8)
    upright_w, upright_h = (height, width) if rotated else (width, height)
    assert max(prepared.pixels.shape[:2]) <= FACE_IMAGE_MAX_SIDE
    assert prepared.pixels.dtype == np.uint8 and prepared.pixels.shape[2] == 3
    # upright: the long side follows the orientation; scale maps back to full-resolution upright pixels
    assert (prepared.pixels.shape[0] > prepared.pixels.shape[1]) == (upright_h > upright_w)
    assert prepared.scale == pytest.approx(prepared.pixels.shape[1] / upright_w)

    warnings: list[str] = []
    ingest = _face_input(SimpleNamespace(sha256="a" * 64, label=label, options={}), data, None, warnings)
    query = prepare_query_task(QueryTask("face", label, "image", data=data))
    assert not warnings and query.error is None
    for pixels, scale in ((ingest.pixels, ingest.scale), (query.pixels, query.scale)):
        assert np.array_equal(pixels, prepared.pixels)
        assert scale == prepared.scale


def test_scene_candidates_use_the_recipe_without_the_downscale():
    data = _photo(2400, 1800, "JPEG", 6)
    decoded = decode_image(data, "JPEG", min_side=1024)
    full = from_decoded(decoded, max_side=None)
    assert full.pixels.shape[1] == decoded.rgb.height  # upright, not downscaled past the decode
    assert full.scale == pytest.approx(full.pixels.shape[1] / 1800)


def test_search_does_not_enter_the_pipeline_face_stage():
    """The query is prepared from the shared low module, not from ingest's model stage."""
    for path in (REPO / "vidpipe" / "search").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "vidpipe.pipeline.face_stage", f"{path} imports the face stage"
