"""Constrained face clustering: threshold edges of a k-nearest-neighbour graph, merged strongest
first (Kruskal order), never merging two clusters that a cannot-link separates.

Cannot-links come from two sources: two faces in the same image or video frame are never the same
person, and a reviewer's "not this person". Must-links (a reviewer's merge) are applied first.
The result is deterministic for the same inputs (ties broken by face id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

KNN = 20  # neighbours per face considered for merging; bounds work to O(n * KNN)


@dataclass(frozen=True)
class ClusterResult:
    person_of: dict[int, int]   # face_id -> person_id (the smallest face_id of its cluster)
    merges: int
    blocked: int                # merges refused by a cannot-link


class _Clusters:
    """Union-find that keeps, per root, the set of roots it must never join."""

    def __init__(self, ids: Sequence[int]) -> None:
        self.parent = {i: i for i in ids}
        self.members = {i: {i} for i in ids}
        self.cannot: dict[int, set[int]] = {i: set() for i in ids}

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def forbid(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        self.cannot[ra].add(b)
        self.cannot[rb].add(a)

    def blocked(self, ra: int, rb: int) -> bool:
        small, large = (ra, rb) if len(self.members[ra]) <= len(self.members[rb]) else (rb, ra)
        return any(self.find(x) == large for x in self.cannot[small]) or \
            any(self.find(x) == small for x in self.cannot[large])

    def union(self, ra: int, rb: int) -> None:
        keep, drop = (ra, rb) if ra < rb else (rb, ra)
        self.parent[drop] = keep
        self.members[keep] |= self.members.pop(drop)
        self.cannot[keep] |= self.cannot.pop(drop)


def cluster_faces(face_ids: Sequence[int], embeddings: np.ndarray, threshold: float,
                  cannot_link: Iterable[tuple[int, int]] = (), must_link: Iterable[tuple[int, int]] = (),
                  knn: int = KNN) -> ClusterResult:
    """Cluster L2-normalised ``embeddings`` (rows match ``face_ids``) at cosine ``threshold``."""
    ids = [int(i) for i in face_ids]
    clusters = _Clusters(ids)
    for a, b in cannot_link:
        if a in clusters.parent and b in clusters.parent:
            clusters.forbid(a, b)
    merges = blocked = 0
    for a, b in sorted(must_link):
        if a in clusters.parent and b in clusters.parent:
            ra, rb = clusters.find(a), clusters.find(b)
            if ra != rb and not clusters.blocked(ra, rb):
                clusters.union(ra, rb)
                merges += 1
    for _score, a, b in _edges(ids, embeddings, threshold, knn):
        ra, rb = clusters.find(a), clusters.find(b)
        if ra == rb:
            continue
        if clusters.blocked(ra, rb):
            blocked += 1
            continue
        clusters.union(ra, rb)
        merges += 1
    person_of = {i: min(clusters.members[clusters.find(i)]) for i in ids}
    return ClusterResult(person_of, merges, blocked)


def _edges(ids: list[int], embeddings: np.ndarray, threshold: float, knn: int) -> list[tuple[float, int, int]]:
    """Pairs at or above the threshold among each face's k nearest neighbours, strongest first."""
    n = len(ids)
    if n < 2:
        return []
    import faiss  # lazy: heavy

    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    scores, neighbours = index.search(vectors, min(knn + 1, n))
    edges: dict[tuple[int, int], float] = {}
    for row in range(n):
        for score, col in zip(scores[row], neighbours[row]):
            if col < 0 or col == row or score < threshold:
                continue
            a, b = sorted((ids[row], ids[int(col)]))
            edges[(a, b)] = max(edges.get((a, b), -1.0), float(score))
    return sorted(((s, a, b) for (a, b), s in edges.items()), key=lambda e: (-e[0], e[1], e[2]))
