"""Object-level room cues (vidpipe.scenes_regions) and their bench: proposals, region pooling,
Chamfer matching, the two-level threshold policy, hotel-level claims. Tiny generated inputs."""

from __future__ import annotations

import numpy as np
import pytest

from vidpipe.scenes_regions import (
    TwoLevelPolicy,
    centre_regions,
    chamfer,
    chamfer_matrix,
    edge_boxes,
    grid_regions,
    label_free_threshold,
)
from vidpipe.scenes_regions.embed import RegionSet, pool_regions
from vidpipe.scenes_regions.proposals import box_to_cells


def test_grid_regions_cover_the_map_at_three_scales_without_duplicates():
    regs = grid_regions(14, 19)
    assert len(regs) == len(set(regs)) and len(regs) >= 10
    assert (0, 0, 14, 14) in regs  # level 1: the largest square
    assert all(0 <= y0 < y1 <= 14 and 0 <= x0 < x1 <= 19 for y0, x0, y1, x1 in regs)
    covered = np.zeros((14, 19), bool)
    for y0, x0, y1, x1 in regs:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert grid_regions(1, 1) == [(0, 0, 1, 1)]
    with pytest.raises(ValueError):
        grid_regions(0, 5)


def test_edge_boxes_find_drawn_objects_and_skip_people():
    cv2 = pytest.importorskip("cv2")
    img = np.full((240, 320, 3), 200, np.uint8)
    cv2.rectangle(img, (30, 40), (110, 120), (20, 40, 160), -1)  # a framed picture
    cv2.circle(img, (230, 150), 40, (40, 120, 30), -1)  # a lamp shade seen from the front
    boxes = edge_boxes(img)
    assert boxes, "no box on two solid objects"

    def near(b, ref, tol=15):
        return all(abs(a - r) <= tol for a, r in zip(b, ref))

    assert any(near(b, (30, 40, 111, 121)) for b in boxes)
    assert any(near(b, (190, 110, 271, 191)) for b in boxes)
    assert not any(near(b, (30, 40, 111, 121)) for b in edge_boxes(img, ignore=[(20, 30, 120, 130)]))
    assert edge_boxes(np.full((240, 320, 3), 128, np.uint8)) == []  # flat: nothing
    assert edge_boxes(np.zeros((4, 4), np.uint8)) == []
    assert edge_boxes(img) == boxes  # deterministic


def test_box_to_cells_is_at_least_one_cell_and_clipped():
    assert box_to_cells((0, 0, 320, 240), 320, 240, 14, 19) == (0, 0, 14, 19)
    assert box_to_cells((300, 230, 320, 240), 320, 240, 14, 19)[2:] == (14, 19)
    y0, x0, y1, x1 = box_to_cells((100, 100, 101, 101), 320, 240, 14, 19)
    assert y1 - y0 >= 1 and x1 - x0 >= 1


def test_pool_regions_is_mac_and_leaves_people_cells_out():
    fmap = np.zeros((3, 4, 4), np.float32)
    fmap[0, 0, 0] = 5.0  # a strong cell in the "person" corner
    fmap[1, 3, 3] = 2.0
    fmap[2] = 0.5
    w = np.ones((4, 4), np.float32)
    w[:2, :2] = 0  # person over the top-left quarter
    vecs, kept = pool_regions(fmap, w, [(0, 0, 4, 4), (0, 0, 2, 2), (2, 2, 4, 4)])
    assert kept == [0, 2]  # the region that is all person is dropped
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1)
    assert vecs[0, 0] == 0  # the person's 5.0 never reaches the descriptor
    assert vecs[1, 1] > vecs[1, 2] > 0


def test_chamfer_matches_shared_objects_in_another_layout():
    """Two 'rooms' with the same three décor objects in another order score high; a room sharing
    one object of three scores lower."""
    rng = np.random.default_rng(0)
    objs = rng.normal(size=(6, 32))
    objs /= np.linalg.norm(objs, axis=1, keepdims=True)
    a = objs[[0, 1, 2]]
    b = objs[[2, 0, 1]]  # same décor, moved around
    c = objs[[0, 3, 4]]  # one shared object
    assert chamfer(a, b) == pytest.approx(1.0)
    assert chamfer(a, c) < 0.6
    both = (chamfer(a, c, symmetric=False), chamfer(c, a, symmetric=False))
    assert chamfer(a, c) == pytest.approx(sum(both) / 2)
    assert chamfer(a, np.zeros((0, 32))) == -1.0
    m = chamfer_matrix([RegionSet(a), RegionSet(b), RegionSet(c)])
    assert np.isneginf(np.diag(m)).all() and m[0, 1] > m[0, 2] and np.allclose(m, m.T)


def test_centring_removes_the_common_component():
    common = np.zeros(8)
    common[0] = 1.0
    sets = [RegionSet(np.array([common * 3 + np.eye(8)[i + 1]], np.float32)) for i in range(4)]
    for s in sets:
        s.vecs /= np.linalg.norm(s.vecs, axis=1, keepdims=True)
    raw = chamfer_matrix(sets)
    cen = chamfer_matrix(centre_regions(sets))
    off = ~np.eye(4, dtype=bool)
    assert raw[off].min() > 0.8 and cen[off].max() < 0.0


def test_label_free_threshold_and_two_level_policy():
    s = np.array([[-np.inf, 0.9, 0.1, 0.2], [0.9, -np.inf, 0.3, 0.4], [0.1, 0.3, -np.inf, 0.5], [0.2, 0.4, 0.5, -np.inf]])
    assert label_free_threshold(s, 0.0) > 0.9  # accept nothing
    t = label_free_threshold(s, 2 / 12)  # the top 2 of 12 ordered pairs: the 0.9 pair, both ways
    assert 0.5 < t <= 0.9 and int((s >= t).sum()) == 2
    assert label_free_threshold(np.full((2, 2), -np.inf), 0.1) == 1.0
    p = TwoLevelPolicy(room_threshold=0.8, hotel_threshold=0.6)
    assert (p.decide(0.85, 0.1), p.decide(0.5, 0.7), p.decide(0.5, 0.5)) == ("room", "hotel", None)
    q = TwoLevelPolicy.calibrate(s, s * 0.5, 2 / 12, 2 / 12)
    assert q.room_threshold == pytest.approx(t) and q.hotel_threshold < q.room_threshold


def test_hotel_claims_count_other_hotels_only_and_skip_the_query_room():
    from bench.eval_scenes import EvalSet
    from bench.eval_scenes_regions import hotel_claims, hotel_negative, hotel_threshold

    room = ["a/1", "a/1", "a/2", "b/1", "b/2", "c/1"]
    hotel = ["a", "a", "a", "b", "b", "c"]
    es = EvalSet("t", [None] * 6, [[]] * 6, room, hotel, np.zeros(6, bool))  # everything held out
    assert not hotel_negative(es, 0, 1) and not hotel_negative(es, 0, 2) and hotel_negative(es, 0, 3)
    s = np.full((6, 6), 0.1)
    np.fill_diagonal(s, -np.inf)
    s[0, 1] = 0.99  # its own room: removed from the gallery, so never a claim
    s[0, 2] = 0.9  # another room of its hotel: a correct hotel claim
    s[0, 3] = 0.95  # another hotel above it: a false claim
    out = hotel_claims(s, es, 0.5)
    assert out["fa"] == 1 and out["nq"] == 5  # c/1 has no other room of its hotel
    assert out["conf"] == 0  # query 0's first result (0.95) is the wrong hotel
    s[0, 3] = 0.2
    assert hotel_claims(s, es, 0.5) == {"fa": 0, "conf": 1, "nq": 5}
    es.calib[:] = True
    assert hotel_threshold(s, es, 0.0) > 0.2  # above every different-hotel pair


def test_region_embedder_on_a_tiny_image_leaves_the_person_out():
    pytest.importorskip("torch")
    from vidpipe.errors import MissingDependencyError
    from vidpipe.scenes_regions import RegionEmbedder

    try:
        emb = RegionEmbedder(resolution=128)
    except MissingDependencyError as e:
        pytest.skip(str(e))
    img = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    full = emb.embed(img)
    assert len(full) >= 5 and full.vecs.shape[1] == 1280
    assert np.allclose(np.linalg.norm(full.vecs, axis=1), 1, atol=1e-5)
    half = emb.embed(img, [(0, 0, 64, 96)])  # a person over the left half
    assert 0 < len(half) < len(full)
