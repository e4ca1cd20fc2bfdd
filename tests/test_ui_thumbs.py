"""Thumbnails: small, upright, re-encoded without metadata, made in sandboxed workers; the wellness blur."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image
from test_ui_support import ASTRONAUT_FACE, IMAGES, SAMPLE, VIDEO, build_case, sha_of

from ui.thumbs import CROP_MAX_SIDE, THUMB_MAX_SIDE, ensure_thumbs, request_for_file, request_for_media
from ui.view import render


def test_thumbnails_are_small_clean_and_leave_evidence_untouched(tmp_path):
    conn = build_case(tmp_path / "case")
    evidence = SAMPLE / IMAGES[0]
    before = hashlib.sha256(evidence.read_bytes()).hexdigest()
    reqs = [request_for_media(conn, sha_of(IMAGES[0])),
            request_for_media(conn, sha_of(IMAGES[0]), box=ASTRONAUT_FACE),
            request_for_media(conn, sha_of(VIDEO), video_time_s=2.0)]
    thumbs = ensure_thumbs(tmp_path / "thumbs", reqs)
    whole, crop, frame = (thumbs[r.key] for r in reqs)

    data = whole.path.read_bytes()
    assert b"Exif" not in data and b"ICC_PROFILE" not in data and b"http://ns.adobe.com/xap" not in data
    with Image.open(whole.path) as im:
        assert im.format == "JPEG" and max(im.size) <= THUMB_MAX_SIDE
        assert len(im.getexif()) == 0 and "exif" not in im.info and "icc_profile" not in im.info
    assert (whole.src_w, whole.src_h) == (512, 512)
    with Image.open(crop.path) as im:
        assert max(im.size) <= CROP_MAX_SIDE and im.size[0] > 50  # box plus margin, not the whole photo
    with Image.open(frame.path) as im:
        assert im.size == (320, 240) and (frame.src_w, frame.src_h) == (320, 240)
    assert hashlib.sha256(evidence.read_bytes()).hexdigest() == before
    # Cached: asking again decodes nothing and returns the same files.
    again = ensure_thumbs(tmp_path / "thumbs", reqs)
    assert [again[r.key].path for r in reqs] == [whole.path, crop.path, frame.path]


def test_exif_orientation_is_applied_and_undecodable_files_give_none(tmp_path):
    img = Image.new("RGB", (200, 100), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    exif[0x010F] = "SecretCam"
    src = tmp_path / "rotated.jpg"
    img.save(src, "JPEG", exif=exif.tobytes())
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    reqs = [request_for_file(src, "a" * 64, "JPEG", "image"), request_for_file(fake, "b" * 64, "JPEG", "image")]
    thumbs = ensure_thumbs(tmp_path / "thumbs", reqs)
    rotated = thumbs[reqs[0].key]
    assert (rotated.src_w, rotated.src_h) == (100, 200)
    with Image.open(rotated.path) as im:
        assert im.size == (100, 200) and len(im.getexif()) == 0
    assert b"SecretCam" not in rotated.path.read_bytes()
    assert thumbs[reqs[1].key] is None


def test_unrevealed_thumbnails_are_blurred_greyscale_and_boxes_scale(tmp_path):
    conn = build_case(tmp_path / "case")
    req = request_for_media(conn, sha_of(IMAGES[0]))
    thumb = ensure_thumbs(tmp_path / "thumbs", [req])[req.key]
    hidden = np.asarray(Image.open(io.BytesIO(render(thumb, revealed=False))).convert("RGB")).astype(int)
    shown = np.asarray(Image.open(io.BytesIO(render(thumb, revealed=True))).convert("RGB")).astype(int)
    # Greyscale: the channels agree (up to JPEG rounding); the clear one is in colour.
    assert np.abs(hidden[..., 0] - hidden[..., 2]).mean() < 2
    assert np.abs(shown[..., 0] - shown[..., 2]).mean() > 10
    # Blurred: far less fine detail (mean absolute horizontal gradient).
    grad = lambda a: np.abs(np.diff(a.mean(axis=2), axis=1)).mean()  # noqa: E731
    assert grad(hidden) < 0.4 * grad(shown)
    boxed = np.asarray(Image.open(io.BytesIO(render(thumb, revealed=True, boxes=[ASTRONAUT_FACE]))).convert("RGB"))
    scale = boxed.shape[1] / 512
    x1, y1 = int(ASTRONAUT_FACE[0] * scale), int(ASTRONAUT_FACE[1] * scale)
    y2 = int(ASTRONAUT_FACE[3] * scale)
    edge = boxed[y1 + 5:y2 - 5, x1].astype(int)
    assert (edge[:, 0] > 180).mean() > 0.8 and (edge[:, 1] < 120).mean() > 0.8  # the red box edge
