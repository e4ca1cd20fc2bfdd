"""Matching a case's media against every imported hash list (table ``hashlist_hits``).

``match_case`` recomputes all hits from scratch in one transaction, so it is idempotent and
its result depends only on the media and the lists, never on the order they arrived in. Call it
after importing a list (existing media) and at the end of an ingest (new media).

- Exact: a media item's MD5, SHA-1 or SHA-256 equals a list entry's (SQL joins on indexes).
- PDQ: Hamming distance <= PDQ_MATCH_DISTANCE between the media's PDQ (quality >= PDQ_MIN_QUALITY)
  and a list PDQ. Small problems compare every pair (numpy popcount); large ones use exact
  multi-index hashing, falling back to a FAISS binary flat scan for skewed codes. All three
  are exact, so the method never changes the hits (tests/test_hashlists.py checks they agree).
- Per (media, list, match kind) one hit: the smallest distance, then the smallest category.
- Negative lists (known false positives) suppress positive hits: an exact negative match means
  the content itself is known benign, so every positive hit on that media is suppressed; a PDQ
  negative match marks the perceptual match as a false positive, so it suppresses the positive
  PDQ hits on that media but not exact ones (an identical digest is no perceptual accident).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import numpy as np

from vidpipe.extract.hashers import PDQ_MATCH_DISTANCE, PDQ_MIN_QUALITY
from vidpipe.store.casedb import transaction

EXACT_KINDS = ("md5", "sha1", "sha256")
PDQ_BYTES = 32
# Brute force (every pair) below this many media x list-PDQ pairs: ~0.1 s in numpy on 2 cores.
BRUTE_MAX_PAIRS = 1_000_000
BRUTE_BLOCK_BYTES = 32 << 20     # working set of one brute-force XOR block
# Multi-index hashing (Norouzi et al., "Fast exact search in Hamming space with multi-index
# hashing", TPAMI 2014): 16 chunks of 16 bits. Two codes within distance 31 differ in at most
# 1 bit in at least one chunk (16 chunks x 2 bits = 32 > 31), so probing every chunk's exact
# value and its 16 one-bit flips finds every match: exact, not approximate. Measured on 2 busy
# shared cores, 10k media x 100k list PDQs: ~0.6-1.3 s, against 2.4-5 s for FAISS IndexBinaryFlat
# and ~100 s for the numpy all-pairs scan.
MIH_CHUNKS = 16
MIH_CANDIDATES_PER_BLOCK = 1_000_000   # bounds memory per block of queries
MIH_MIN_PRUNING = 4   # a block whose candidates exceed 1/4 of all pairs (skewed codes) is brute-forced


def pdq_codes(hex_values: list[str]) -> np.ndarray:
    """64-hex-digit PDQ hashes to packed (n, 32) uint8 codes, most significant bit first."""
    if not hex_values:
        return np.zeros((0, PDQ_BYTES), np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hex_values)), np.uint8).reshape(len(hex_values), PDQ_BYTES).copy()


def pdq_pairs(queries: np.ndarray, refs: np.ndarray, max_distance: int = PDQ_MATCH_DISTANCE,
              method: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Every (query row, ref row, distance) with Hamming distance <= max_distance, sorted by
    query, then ref; plus the method used: ``numpy`` (all pairs), ``mih`` (multi-index hashing,
    exact up to distance 31) or ``faiss-binary-flat`` (all pairs, FAISS popcount scan)."""
    queries = np.ascontiguousarray(queries, np.uint8).reshape(-1, PDQ_BYTES)
    refs = np.ascontiguousarray(refs, np.uint8).reshape(-1, PDQ_BYTES)
    if method == "auto":
        if len(queries) * len(refs) <= BRUTE_MAX_PAIRS:
            method = "numpy"
        else:
            method = "mih" if max_distance < 2 * MIH_CHUNKS else "faiss-binary-flat"
    if len(queries) == 0 or len(refs) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, method
    if method == "numpy":
        qi, ri, d = _pairs_numpy(queries, refs, max_distance)
    elif method == "mih":
        if max_distance >= 2 * MIH_CHUNKS:
            raise ValueError(f"multi-index hashing with {MIH_CHUNKS} chunks is exact only up to distance "
                             f"{2 * MIH_CHUNKS - 1}")
        if len(queries) > len(refs):   # probe with the smaller side: probing costs per probing row
            ri, qi, d = _pairs_mih(refs, queries, max_distance)
        else:
            qi, ri, d = _pairs_mih(queries, refs, max_distance)
    elif method == "faiss-binary-flat":
        qi, ri, d = _pairs_faiss(queries, refs, max_distance)
    else:
        raise ValueError(f"unknown PDQ matching method {method!r}")
    order = np.lexsort((ri, qi))
    return qi[order], ri[order], d[order], method


def _distances(q64: np.ndarray, r64: np.ndarray) -> np.ndarray:
    return np.bitwise_count(q64 ^ r64).sum(axis=-1, dtype=np.int64)


def _pair_distances(q_cols: np.ndarray, qi: np.ndarray, r_cols: np.ndarray, ri: np.ndarray) -> np.ndarray:
    """Hamming distance of each pair (query qi[k], ref ri[k]); codes given as (4, rows) uint64
    columns, because a 1-D ``take`` per 64-bit word gathers about twice as fast as row indexing."""
    d = np.zeros(len(qi), np.uint16)
    for w in range(q_cols.shape[0]):
        d += np.bitwise_count(q_cols[w].take(qi) ^ r_cols[w].take(ri))
    return d.astype(np.int64)


def _pairs_numpy(queries: np.ndarray, refs: np.ndarray, max_distance: int) -> tuple[np.ndarray, ...]:
    q, r = queries.view(np.uint64), refs.view(np.uint64)   # (m, 4), (n, 4)
    block = max(1, BRUTE_BLOCK_BYTES // max(1, r.nbytes))
    parts = []
    for start in range(0, len(q), block):
        dist = _distances(q[start:start + block, None, :], r[None, :, :])
        qi, ri = np.nonzero(dist <= max_distance)
        parts.append((qi + start, ri, dist[qi, ri]))
    return tuple(np.concatenate([p[k] for p in parts]).astype(np.int64) for k in range(3))


def _pairs_faiss(queries: np.ndarray, refs: np.ndarray, max_distance: int) -> tuple[np.ndarray, ...]:
    import faiss  # lazy: heavy

    index = faiss.IndexBinaryFlat(PDQ_BYTES * 8)
    index.add(refs)
    # FAISS's binary range search keeps distances strictly below its radius (cf. indexer/binary_index.py).
    lims, distances, ids = index.range_search(queries, max_distance + 1)
    qi = np.repeat(np.arange(len(queries), dtype=np.int64), np.diff(lims.astype(np.int64)))
    return qi, ids.astype(np.int64), distances.astype(np.int64)


def _pairs_mih(queries: np.ndarray, refs: np.ndarray, max_distance: int) -> tuple[np.ndarray, ...]:
    q16, r16 = queries.view(np.uint16), refs.view(np.uint16)   # (m, 16), (n, 16): one column per chunk
    q_cols, r_cols = np.ascontiguousarray(queries.view(np.uint64).T), np.ascontiguousarray(refs.view(np.uint64).T)
    flips = np.array([0] + [1 << b for b in range(16)], np.uint16)   # the exact value and its 1-bit flips
    # Per chunk: ref rows sorted by chunk value, and where each of the 65536 values starts.
    tables = []
    for c in range(MIH_CHUNKS):
        order = np.argsort(r16[:, c], kind="stable").astype(np.int32 if len(refs) < 2**31 else np.int64)
        counts = np.bincount(r16[:, c], minlength=1 << 16)
        tables.append((order, np.concatenate(([0], np.cumsum(counts)[:-1])), counts))
    expected = MIH_CHUNKS * len(flips) * (len(refs) / (1 << 16) + 1)
    block = max(1, int(MIH_CANDIDATES_PER_BLOCK // expected))
    parts = []
    for start in range(0, len(queries), block):
        stop = min(len(queries), start + block)
        probes = [(q16[start:stop, c, None] ^ flips[None, :]).reshape(-1) for c in range(MIH_CHUNKS)]
        found = [tables[c][2][p] for c, p in enumerate(probes)]
        if sum(int(f.sum()) for f in found) * MIH_MIN_PRUNING > (stop - start) * len(refs):
            qi, ri, d = _pairs_faiss(queries[start:stop], refs, max_distance)   # skewed codes: scan instead
        else:
            qi, ri = _mih_candidates(tables, probes, found, len(flips))
            d = _pair_distances(q_cols, start + qi, r_cols, ri)
            hit = d <= max_distance
            # A pair can surface in several chunks; deduplicate the (few) hits, not the candidates.
            _, first = np.unique(qi[hit] * len(refs) + ri[hit], return_index=True)
            qi, ri, d = qi[hit][first], ri[hit][first], d[hit][first]
        parts.append((qi + start, ri, d))
    return tuple(np.concatenate([p[k] for p in parts]).astype(np.int64) for k in range(3))


def _mih_candidates(tables: list[tuple[np.ndarray, ...]], probes: list[np.ndarray], found: list[np.ndarray],
                    n_flips: int) -> tuple[np.ndarray, np.ndarray]:
    """(query row in block, ref row) for every ref whose chunk equals a probe of that query."""
    qis, ris = [], []
    for (order, starts, _), probe, counts in zip(tables, probes, found):
        total = int(counts.sum())
        if not total:
            continue
        # Candidate k of probe p sits at starts[p] + (k - first candidate of p) in ``order``.
        shift = np.cumsum(counts) - counts - starts[probe]
        qis.append(np.repeat(np.arange(len(probe), dtype=np.int64) // n_flips, counts))
        ris.append(order[np.arange(total, dtype=np.int64) - np.repeat(shift, counts)].astype(np.int64))
    if not qis:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(qis), np.concatenate(ris)


def match_case(conn: sqlite3.Connection, method: str = "auto") -> dict[str, Any]:
    """Recompute ``hashlist_hits`` for all media against all lists; return counts.

    Runs in the caller's transaction when there is one, else in its own (BEGIN IMMEDIATE).
    ``method`` forces the PDQ pair search (``numpy``, ``mih``, ``faiss-binary-flat``; all exact);
    ``auto`` picks by problem size.
    """
    started = time.perf_counter()
    n_lists = conn.execute("SELECT COUNT(*) FROM hashlists").fetchone()[0]
    pdq_hits: list[tuple[Any, ...]] = []
    pdq_method, n_media_pdq, n_list_pdq = None, 0, 0
    if n_lists:
        pdq_hits, pdq_method, n_media_pdq, n_list_pdq = _pdq_hits(conn, method)
    with transaction(conn):
        conn.execute("DELETE FROM hashlist_hits")
        if n_lists:
            # Loop over the smaller table and look up the other on its index (CROSS JOIN fixes the
            # order; without statistics SQLite may scan millions of list entries for a few media).
            n_media = conn.execute("SELECT COUNT(*) FROM media").fetchone()[0]
            n_entries = conn.execute("SELECT COALESCE(SUM(entries), 0) FROM hashlists").fetchone()[0]
            tables = "media m CROSS JOIN hashlist_entries e" if n_media <= n_entries else \
                "hashlist_entries e CROSS JOIN media m"
            for kind in EXACT_KINDS:
                # MIN(category) ignores NULL: a named category wins over none, deterministically.
                conn.execute(f"INSERT INTO hashlist_hits(sha256, list_id, category, match, distance, suppressed) "
                             f"SELECT m.sha256, e.list_id, MIN(e.category), '{kind}', 0, 0 "
                             f"FROM {tables} ON e.{kind} = m.{kind} GROUP BY m.sha256, e.list_id")
            conn.executemany("INSERT INTO hashlist_hits(sha256, list_id, category, match, distance, suppressed) "
                             "VALUES (?,?,?,'pdq',?,0)", pdq_hits)
            _suppress(conn)
    return _summary(conn, n_lists, n_media_pdq, n_list_pdq, pdq_method, time.perf_counter() - started)


def _pdq_hits(conn: sqlite3.Connection, method: str) -> tuple[list[tuple[Any, ...]], str | None, int, int]:
    shas, queries = _media_pdqs(conn)
    blob, refs = _list_pdqs(conn)
    if not len(shas) or not len(refs):
        return [], None, len(shas), len(refs)
    qi, ri, dist, used = pdq_pairs(queries, refs, method=method)
    # Fan the (few) matched PDQs out to the list entries that carry them, through the pdq index.
    hex_of = {r: blob[2 * PDQ_BYTES * r: 2 * PDQ_BYTES * (r + 1)] for r in set(ri.tolist())}
    matched = sorted(set(hex_of.values()))
    entries: dict[str, list[tuple[int, str | None]]] = {}
    for start in range(0, len(matched), 500):
        chunk = matched[start:start + 500]
        for list_id, category, pdq in conn.execute(
                f"SELECT list_id, category, pdq FROM hashlist_entries WHERE pdq IN ({','.join('?' * len(chunk))})",
                chunk):
            entries.setdefault(pdq, []).append((list_id, category))
    best: dict[tuple[str, int], tuple[int, bool, str]] = {}
    for q, r, d in zip(qi.tolist(), ri.tolist(), dist.tolist()):
        for list_id, category in entries[hex_of[r]]:
            key, rank = (str(shas[q]), list_id), (d, category is None, category or "")
            if key not in best or rank < best[key]:
                best[key] = rank
    hits = [(sha, list_id, None if none else cat, d) for (sha, list_id), (d, none, cat) in sorted(best.items())]
    return hits, used, len(shas), len(refs)


# Hashes travel out of SQLite as one concatenated string: a million rows as Python objects would
# cost seconds. Every piece has a fixed width (SHA-256 and PDQ are 64 hex digits, checked), so
# the string slices evenly.
def _media_pdqs(conn: sqlite3.Connection) -> tuple[np.ndarray, np.ndarray]:
    """(media SHA-256s, their PDQ codes) for PDQs of quality >= PDQ_MIN_QUALITY."""
    blob = conn.execute("SELECT group_concat(sha256 || value, '') FROM signals WHERE signal = 'pdq' "
                        "AND quality >= ? AND length(value) = 64 AND length(sha256) = 64",
                        (PDQ_MIN_QUALITY,)).fetchone()[0] or ""
    rows = np.frombuffer(blob.encode("ascii"), dtype="S64").reshape(-1, 2)
    codes = np.frombuffer(bytes.fromhex(rows[:, 1].tobytes().decode("ascii")), np.uint8).reshape(-1, PDQ_BYTES)
    return rows[:, 0].astype(str), codes


def _list_pdqs(conn: sqlite3.Connection) -> tuple[str, np.ndarray]:
    """(every distinct list PDQ concatenated as hex, their codes in the same order)."""
    blob = conn.execute("SELECT group_concat(pdq, '') FROM (SELECT DISTINCT pdq FROM hashlist_entries "
                        "WHERE pdq IS NOT NULL ORDER BY pdq)").fetchone()[0] or ""
    return blob, np.frombuffer(bytes.fromhex(blob), np.uint8).reshape(-1, PDQ_BYTES)


def _suppress(conn: sqlite3.Connection) -> None:
    positive = "list_id IN (SELECT list_id FROM hashlists WHERE negative = 0)"
    negative_hits = ("SELECT h.sha256 FROM hashlist_hits h JOIN hashlists l ON l.list_id = h.list_id "
                     "WHERE l.negative = 1")
    conn.execute(f"UPDATE hashlist_hits SET suppressed = 1 WHERE {positive} "
                 f"AND sha256 IN ({negative_hits} AND h.match != 'pdq')")
    conn.execute(f"UPDATE hashlist_hits SET suppressed = 1 WHERE {positive} AND match = 'pdq' "
                 f"AND sha256 IN ({negative_hits} AND h.match = 'pdq')")


def _summary(conn: sqlite3.Connection, n_lists: int, n_media_pdq: int, n_list_pdq: int, method: str | None,
             elapsed: float) -> dict[str, Any]:
    hits = {kind: 0 for kind in (*EXACT_KINDS, "pdq")}
    for kind, n in conn.execute("SELECT h.match, COUNT(*) FROM hashlist_hits h JOIN hashlists l "
                                "ON l.list_id = h.list_id WHERE l.negative = 0 AND h.suppressed = 0 "
                                "GROUP BY h.match"):
        hits[kind] = n
    row = conn.execute(
        "SELECT COUNT(DISTINCT CASE WHEN l.negative = 0 AND h.suppressed = 0 THEN h.sha256 END), "
        "SUM(l.negative = 0 AND h.suppressed = 1), SUM(l.negative = 1) "
        "FROM hashlist_hits h JOIN hashlists l ON l.list_id = h.list_id").fetchone()
    return {
        "lists": n_lists,
        "entries": conn.execute("SELECT COALESCE(SUM(entries), 0) FROM hashlists").fetchone()[0],
        "media": conn.execute("SELECT COUNT(*) FROM media").fetchone()[0],
        "media_pdq": n_media_pdq, "list_pdq_distinct": n_list_pdq,
        "hits": hits, "flagged_media": row[0] or 0, "suppressed": row[1] or 0, "negative_hits": row[2] or 0,
        "pdq_method": method, "pdq_max_distance": PDQ_MATCH_DISTANCE, "pdq_min_quality": PDQ_MIN_QUALITY,
        "elapsed_s": round(elapsed, 3),
    }
