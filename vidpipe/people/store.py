"""Reading faces and constraints from the case, and writing a clustering back."""

from __future__ import annotations

import json
import sqlite3
from itertools import combinations

import numpy as np

from vidpipe.errors import UsageError
from vidpipe.people.cluster import ClusterResult, cluster_faces
from vidpipe.search.faces import face_threshold
from vidpipe.store.casedb import transaction, utc_now


def load_faces(conn: sqlite3.Connection) -> tuple[str | None, list[int], np.ndarray, list[tuple[int, int]]]:
    """(embedder key, face ids, embeddings, same-picture cannot-links) for the case's main embedder."""
    row = conn.execute("SELECT embedder, COUNT(*) n FROM faces GROUP BY embedder ORDER BY n DESC LIMIT 1").fetchone()
    if row is None:
        return None, [], np.zeros((0, 512), np.float32), []
    embedder = row["embedder"]
    ids, vectors, groups = [], [], {}
    for r in conn.execute("SELECT face_id, sha256, frame_key, embedding FROM faces WHERE embedder=? ORDER BY face_id",
                          (embedder,)):
        ids.append(r["face_id"])
        vectors.append(np.frombuffer(r["embedding"], dtype="<f4"))
        groups.setdefault((r["sha256"], r["frame_key"]), []).append(r["face_id"])
    same_picture = [pair for members in groups.values() for pair in combinations(members, 2)]
    return embedder, ids, np.vstack(vectors), same_picture


def reviewer_constraints(conn: sqlite3.Connection) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    must, cannot = [], []
    for r in conn.execute("SELECT face_a, face_b, kind FROM face_constraints"):
        (must if r["kind"] == "must_link" else cannot).append((r["face_a"], r["face_b"]))
    return must, cannot


def add_constraint(conn: sqlite3.Connection, face_a: int, face_b: int, kind: str, reviewer: str,
                   reason: str | None = None) -> None:
    """Record a reviewer's must-link or cannot-link; it binds every later clustering."""
    if not reviewer:
        raise UsageError("a constraint needs a named reviewer")
    a, b = sorted((int(face_a), int(face_b)))
    if a == b:
        raise UsageError("a face cannot be linked to itself")
    conn.execute("INSERT OR REPLACE INTO face_constraints(face_a, face_b, kind, reviewer, reason, created_utc) "
                 "VALUES (?,?,?,?,?,?)", (a, b, kind, reviewer, reason, utc_now()))


def run_clustering(conn: sqlite3.Connection, threshold: float | None = None) -> dict:
    """Cluster every face under all constraints and store the assignment; return a summary."""
    embedder, ids, vectors, same_picture = load_faces(conn)
    if threshold is not None:
        source = {"source": "command line"}
    else:
        threshold, source = face_threshold(conn, embedder or "")
        if threshold is None:
            raise UsageError("no face calibration for this embedder: run `vidpipe calibrate faces --case DIR "
                             "--labels CSV` or pass --threshold")
        source["source"] = "calibration" if source.get("calibration_id") else "default calibration"
    must, cannot = reviewer_constraints(conn)
    result: ClusterResult = cluster_faces(ids, vectors, threshold, cannot_link=same_picture + cannot, must_link=must)
    with transaction(conn):  # the clustering row and its assignment: all or nothing
        cur = conn.execute("INSERT INTO clusterings(created_utc, threshold, threshold_source, embedder, faces, "
                           "persons, detail) VALUES (?,?,?,?,?,?,?)",
                           (utc_now(), threshold, json.dumps(source), embedder, len(ids),
                            len(set(result.person_of.values())), json.dumps({"merges": result.merges,
                                                                             "blocked": result.blocked})))
        clustering_id = cur.lastrowid
        conn.execute("DELETE FROM face_person")
        conn.executemany("INSERT INTO face_person(face_id, person_id, clustering_id) VALUES (?,?,?)",
                         [(f, p, clustering_id) for f, p in result.person_of.items()])
    sizes: dict[int, int] = {}
    for person in result.person_of.values():
        sizes[person] = sizes.get(person, 0) + 1
    files = dict(conn.execute("SELECT fp.person_id, COUNT(DISTINCT f.sha256) FROM face_person fp "
                              "JOIN faces f ON f.face_id = fp.face_id GROUP BY fp.person_id").fetchall())
    largest = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return {"clustering_id": clustering_id, "threshold": threshold, "threshold_source": source, "faces": len(ids),
            "persons": len(sizes), "singletons": sum(1 for n in sizes.values() if n == 1),
            "merges": result.merges, "blocked_by_constraints": result.blocked,
            "largest": [{"person_id": p, "faces": n, "files": files.get(p, 0)} for p, n in largest]}
