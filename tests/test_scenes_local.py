"""vidpipe.scenes_local: RootSIFT, codebook, VLAD, ASMK, verification and fusion on tiny generated data."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("faiss")

from vidpipe.extract.scenes.geometry import INLIER_FLOOR  # noqa: E402
from vidpipe.scenes_local import asmk, codebook, fusion, rootsift, verify, vlad  # noqa: E402


def scene(seed: int, w: int = 480, h: int = 360) -> np.ndarray:
    """A cluttered RGB 'room' of random rectangles, ellipses and lines: many distinct SIFT points."""
    rng = np.random.default_rng(seed)
    im = np.full((h, w, 3), rng.integers(60, 200, 3), np.uint8)
    for _ in range(70):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(im, (x, y), (x + int(rng.integers(8, 60)), y + int(rng.integers(8, 60))), c, -1)
        elif kind == 1:
            cv2.ellipse(im, (x, y), (int(rng.integers(4, 30)), int(rng.integers(4, 30))), float(rng.integers(180)),
                        0, 360, c, -1)
        else:
            cv2.line(im, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), c, int(rng.integers(1, 4)))
    return im


H_KNOWN = np.array([[0.92, 0.06, 18.0], [-0.04, 0.95, 9.0], [2e-4, 1e-4, 1.0]])


def test_rootsift_is_hellinger_and_unit_norm():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 255, (2, 5, 128)).astype(np.float32)
    ra, rb = rootsift.rootsift(a), rootsift.rootsift(b)
    assert np.allclose(np.linalg.norm(ra, axis=1), 1.0, atol=1e-5)
    assert (ra >= 0).all()
    # Euclidean distance between RootSIFT = Hellinger kernel of the L1-normalised histograms.
    pa, pb = a / a.sum(1, keepdims=True), b / b.sum(1, keepdims=True)
    want = 2 - 2 * np.sqrt(pa * pb).sum(1)
    assert np.allclose(((ra - rb) ** 2).sum(1), want, atol=1e-5)
    assert np.all(rootsift.rootsift(np.zeros((2, 128))) == 0)
    with pytest.raises(ValueError):
        rootsift.rootsift(np.zeros(128))


def test_features_masked_and_roundtrip(tmp_path):
    im = scene(1)
    f = rootsift.extract(im)
    box = (0.0, 0.0, 240.0, 360.0)  # left half is a "person"
    fm = rootsift.extract(im, [box])
    assert len(f) > 100 and 0 < len(fm) < len(f)
    assert (fm.points[:, 0] > 235).all()  # no point inside the masked half (SIFT border tolerance)
    rootsift.save(tmp_path / "f.npz", [f, fm])
    back = rootsift.load(tmp_path / "f.npz")
    assert [len(x) for x in back] == [len(f), len(fm)]
    assert np.array_equal(back[0].descriptors, f.descriptors) and np.allclose(back[1].points, fm.points)
    assert rootsift.stack(back).shape == (len(f) + len(fm), 128)


def test_codebook_finds_clusters_deterministically():
    rng = np.random.default_rng(2)
    centres = np.eye(8, dtype=np.float32)[:3] * 10
    x = np.concatenate([c + rng.normal(0, 0.1, (200, 8)).astype(np.float32) for c in centres])
    words = codebook.train(x, 3)
    assert words.shape == (3, 8)
    assert np.abs(np.sort(words[:, :3].argmax(1)) - np.arange(3)).sum() == 0
    assert np.array_equal(words, codebook.train(x, 3))
    idx, dist = codebook.assign(x[:5], words, 2)
    assert idx.shape == (5, 2) and (dist[:, 0] <= dist[:, 1]).all()
    assert codebook.train(x[:2], 10).shape == (2, 8)  # k capped by the data
    with pytest.raises(ValueError):
        codebook.train(np.zeros((0, 8), np.float32), 4)


def test_vlad_dims_norm_and_burst_invariance():
    rng = np.random.default_rng(3)
    words = rng.normal(size=(4, 16)).astype(np.float32)
    x = rng.normal(size=(50, 16)).astype(np.float32)
    v = vlad.encode(x, words)
    assert v.shape == (64,) and v.dtype == np.float32
    assert np.isclose(np.linalg.norm(v), 1.0, atol=1e-5)
    assert np.all(vlad.encode(np.zeros((0, 16)), words) == 0)
    # Intra-normalisation: a burst (every descriptor of one word repeated, as a striped wallpaper
    # repeats one patch) leaves the vector unchanged; without it, that word's block would dominate.
    nearest = codebook.assign(x, words)[0][:, 0]
    burst = x[nearest == np.bincount(nearest).argmax()]
    assert len(burst) > 3
    assert np.allclose(vlad.encode(np.concatenate([x, burst, burst, burst]), words), v, atol=1e-5)
    assert not np.allclose(vlad.encode(np.concatenate([x, burst, burst, burst]), words, intra_norm=False),
                           vlad.encode(x, words, intra_norm=False), atol=1e-3)
    y = rng.normal(size=(50, 16)).astype(np.float32)
    assert float(vlad.encode(y, words) @ v) < 0.9
    assert vlad.encode_many([x, y], words).shape == (2, 64)


def test_asmk_self_one_disjoint_zero_and_selective():
    words = np.eye(4, dtype=np.float32) * 5
    a = asmk.aggregate(words[[0, 1]] + 0.1 * np.eye(4, dtype=np.float32)[[2, 3]], words)
    assert list(a.words) == [0, 1]
    assert np.isclose(asmk.similarity(a, a), 1.0)
    b = asmk.aggregate(words[[2, 3]] + 0.1, words)
    assert asmk.similarity(a, b) == 0.0  # no shared word
    # Same word, opposite residual: below tau, it contributes nothing (not a negative score).
    c = asmk.aggregate(words[[0, 1]] - 0.1 * np.eye(4, dtype=np.float32)[[2, 3]], words)
    assert asmk.similarity(a, c) == 0.0
    s = asmk.similarity_matrix([a, b, c])
    assert s.shape == (3, 3) and np.allclose(np.diag(s), 1.0) and np.allclose(s, s.T)


def test_verification_finds_known_transform_and_rejects_other_scene():
    im = scene(4)
    h, w = im.shape[:2]
    warped = cv2.warpPerspective(im, H_KNOWN, (w, h), borderValue=(128, 128, 128))
    fa, fb, fc = rootsift.extract(im), rootsift.extract(warped), rootsift.extract(scene(5))
    from vidpipe.extract.scenes.geometry import match_features

    res = match_features(fa, fb)
    assert res["inliers"] > 3 * INLIER_FLOOR
    pa = np.array([m[0] for m in res["matches"]], np.float64)
    pb = np.array([m[1] for m in res["matches"]], np.float64)
    proj = cv2.perspectiveTransform(pa[None], H_KNOWN)[0]
    assert np.median(np.linalg.norm(proj - pb, axis=1)) < 2.0  # the inliers follow the known transform
    counts = verify.inliers(fa, [fb, fc])
    assert counts[0] == res["inliers"] and counts[1] <= INLIER_FLOOR
    m = verify.inlier_matrix([fa, fb, fc])
    assert m[0, 1] == m[1, 0] > 3 * INLIER_FLOOR and m[0, 2] <= INLIER_FLOOR and m[0, 0] == 0


def test_verify_top_only_verifies_the_best():
    seen = []
    got = verify.verify_top(np.array([0.1, 0.9, -np.inf, 0.5]), 3, lambda j: seen.append(j) or 10 * j)
    assert got == {1: 10, 3: 30, 0: 0} and seen == [1, 3, 0]


def test_fusion():
    g, loc = np.array([0.8, 0.2]), np.array([0.0, 1.0])
    assert np.allclose(fusion.score_fusion(g, loc, 0.5), [0.4, 0.6])
    with pytest.raises(ValueError):
        fusion.score_fusion(g, loc, 1.5)
    r = fusion.rank_fusion(np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, -np.inf]))
    assert r.argmax() == 0 and r[2] < r[0]
    s = fusion.add_geometry(np.array([0.5, 0.5, 0.5]), np.array([0, INLIER_FLOOR, 1000]), 0.5)
    assert s[0] == s[1] == 0.5 and np.isclose(s[2], 1.0)  # one-sided: weak geometry changes nothing


def test_zscore_fusion_is_scale_free():
    cos = np.array([[0.9, 0.8, 0.7, -np.inf]])
    tiny = np.array([[0.001, 0.003, 0.002, -np.inf]])  # ASMK-like scale: would vanish in a plain sum
    f = fusion.zscore_fusion(cos, tiny)
    assert np.isneginf(f[0, 3])
    assert np.allclose(fusion.zscore_fusion(cos, tiny * 100), f)  # rescaling a similarity changes nothing
    assert f[0, 1] > f[0, 2] and f[0, 1] > f[0, 0] - 1e-9  # the small-scale similarity does move the order
    assert np.allclose(np.nanmean(np.where(np.isfinite(f), f, np.nan)), 0.0)


def test_cnn_local_cells_unit_and_people_left_out():
    pytest.importorskip("efficientnet_lite_pytorch")
    from vidpipe.scenes_local.cnn_local import CnnLocalExtractor

    ext = CnnLocalExtractor(resolution=128)
    im = scene(6, 256, 192)
    d = ext.extract(im)
    assert d.ndim == 2 and d.shape[1] == 112 and len(d) == 8 * 11  # stride 16 at 128 x 171 px
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-4)
    dm = ext.extract(im, [(0.0, 0.0, 128.0, 192.0)])  # left half is a person
    assert 0 < len(dm) < len(d)
