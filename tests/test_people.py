"""Constrained face clustering."""

from __future__ import annotations

import numpy as np

from vidpipe.people.cluster import cluster_faces


def _identities(n_people: int = 3, per_person: int = 6, noise: float = 0.25, seed: int = 3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, 64))
    vectors, labels = [], []
    for person in range(n_people):
        for _ in range(per_person):
            vectors.append(centres[person] + noise * rng.normal(size=64))
            labels.append(person)
    vectors = np.asarray(vectors, dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return list(range(100, 100 + len(labels))), vectors, labels


def test_clusters_recover_identities() -> None:
    ids, vectors, labels = _identities()
    result = cluster_faces(ids, vectors, threshold=0.7)
    persons = {}
    for face_id, label in zip(ids, labels):
        persons.setdefault(label, set()).add(result.person_of[face_id])
    assert all(len(p) == 1 for p in persons.values())          # each identity in one cluster
    assert len({next(iter(p)) for p in persons.values()}) == 3  # and the clusters differ
    assert result.person_of[ids[0]] == min(ids[:6])             # person id = smallest face id


def test_same_picture_and_reviewer_cannot_links_are_never_merged() -> None:
    ids, vectors, _ = _identities(n_people=1, per_person=6)
    cannot = [(ids[0], ids[1]), (ids[2], ids[3])]
    result = cluster_faces(ids, vectors, threshold=0.5, cannot_link=cannot)
    for a, b in cannot:
        assert result.person_of[a] != result.person_of[b]
    assert result.blocked > 0


def test_must_link_joins_what_the_threshold_would_not() -> None:
    ids, vectors, labels = _identities(n_people=2, per_person=3)
    a = ids[labels.index(0)]
    b = ids[labels.index(1)]
    apart = cluster_faces(ids, vectors, threshold=0.9)
    assert apart.person_of[a] != apart.person_of[b]
    joined = cluster_faces(ids, vectors, threshold=0.9, must_link=[(a, b)])
    assert joined.person_of[a] == joined.person_of[b]


def test_deterministic() -> None:
    ids, vectors, _ = _identities(seed=9)
    assert cluster_faces(ids, vectors, 0.6).person_of == cluster_faces(ids, vectors, 0.6).person_of
