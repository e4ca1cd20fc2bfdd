"""Region-to-region similarity: Chamfer (mean of best matches) between two photos' regions.

Why Chamfer and not the sum of region vectors: summing (R-MAC) asks "is the whole room alike";
Chamfer asks "does each thing I see have a twin over there" (Kim et al., ViSiL; the max-sim of
ColBERT), so a query whose room is not in the gallery still scores high against another room
with the same bedspread, lamps and art, even in another layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidpipe.scenes_regions.embed import RegionSet


def chamfer(a: np.ndarray, b: np.ndarray, symmetric: bool = True) -> float:
    """Mean over a's rows of their best cosine in b (both (n, d) L2-normalised); with `symmetric`
    the average of both directions (a score of the pair, not of who is the query). -1 when empty."""
    if len(a) == 0 or len(b) == 0:
        return -1.0
    s = a @ b.T
    ab = float(s.max(1).mean())
    return 0.5 * (ab + float(s.max(0).mean())) if symmetric else ab


def chamfer_matrix(sets: Sequence[RegionSet | np.ndarray], symmetric: bool = True) -> np.ndarray:
    """(n, n) Chamfer similarity of every ordered pair (diagonal -inf: leave-one-out)."""
    vecs = [s.vecs if isinstance(s, RegionSet) else np.asarray(s, np.float32) for s in sets]
    n = len(vecs)
    out = np.full((n, n), -np.inf, np.float32)
    for i in range(n):
        for j in range(n):
            if i != j:
                out[i, j] = chamfer(vecs[i], vecs[j], symmetric)
    return out


def centre_regions(sets: Sequence[RegionSet], mean: np.ndarray | None = None) -> list[np.ndarray]:
    """Region vectors minus the mean region of `sets` (or `mean`), re-normalised, learned without
    labels on the images being searched (a case's own photos). Why: every indoor region shares a
    "wall/floor/furniture" component that makes all cosines high; removing it leaves what is
    particular to this décor (measured in bench.eval_scenes_regions)."""
    allv = [s.vecs for s in sets if len(s)]
    if mean is None:
        mean = np.concatenate(allv).mean(0) if allv else None
    out = []
    for s in sets:
        v = s.vecs if mean is None else s.vecs - mean
        out.append((v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32))
    return out
