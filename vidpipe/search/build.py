"""Build, check and rebuild the case's indexes from case.sqlite (the system of record).

This is where the case database meets the FAISS library (`indexer`, which knows nothing of cases):
it reads rows, decides what each index must hold, and hands ids and vectors to `indexer`.

Indexes and the ids they hold:

- ``face``: one vector per row of ``faces`` for one embedder (``params.model_key``); id =
  ``faces.face_id`` (INTEGER PRIMARY KEY, so stable: SQLite never renumbers it).
- ``scene``: one room vector per row of ``scenes`` (an image, or a video keyframe) for one scene
  embedder; id = ``scenes.scene_id``.
- ``pdq``: one 256-bit code per media item with a PDQ hash of quality >= 50 (Meta: lower-quality
  hashes are too featureless to match on); id = ``media.rowid``. Low-quality PDQ hashes stay in
  the database and near-dup search still reports exact (distance 0) matches on them via SQL.
- ``phash``: one 64-bit pHash per media item; id = ``media.rowid``.

``media.rowid`` is implicit (``media`` has a TEXT primary key), so a VACUUM could renumber it;
the database fingerprint covers count, sum and max of the ids, so an index whose ids no longer
mean the same rows is detected as stale and rebuilt, never used.

The fingerprint: schema version, these build rules' version, the filter, and a digest over
(run, count, sum of ids, max id) of the source rows grouped by run. Rows are only added or
replaced by runs, so any change to what an index should hold changes the fingerprint.

Float indexes are exact while small and approximate above `FLOAT_EXACT_MAX_BYTES` (IVF-Flat, or
IVF-PQ under a memory bound); an approximate index's recall@10 against exact search is measured
on a sample when it is built and recorded in its manifest (`IndexPolicy` says how to choose;
`$VIDPIPE_FLOAT_INDEX` and `$VIDPIPE_MAX_INDEX_BYTES` set it for the CLI and the UI).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.base import Index
from indexer.binary_index import KIND_BINARY_FLAT, BinaryIndex, codes_from_hex
from indexer.float_index import (
    FLOAT_KINDS,
    KIND_FLAT,
    FloatIndex,
    choose_float_kind,
    feasible_kind,
    tune_nprobe,
)
from indexer.store import (
    Manifest,
    check_files,
    cleanup_temp_files,
    index_path,
    load_index,
    manifest_path,
    save_index,
)
from vidpipe import __version__
from vidpipe.errors import UsageError
from vidpipe.extract.hashers import PDQ_MIN_QUALITY
from vidpipe.store.casedb import CasePaths

log = logging.getLogger(__name__)

INDEX_NAMES = ("face", "scene", "pdq", "phash")
# Float indexes: index name -> (table, id column). Both tables key vectors by their embedder.
FLOAT_SOURCES = {"face": ("faces", "face_id"), "scene": ("scenes", "scene_id")}
BUILD_RULES_VERSION = 1            # bump when what goes into an index changes
SIGNAL_BITS = {"pdq": 256, "phash": 64}
FACE_DIM_DEFAULT = 512             # FaceNet InceptionResnetV1, the default embedder (used for an empty index)
FLOAT_DIM_DEFAULT = {"face": FACE_DIM_DEFAULT, "scene": 1280}   # scene: EfficientNet-Lite0 features
_CHUNK = 4096
ENV_FLOAT_KIND = "VIDPIPE_FLOAT_INDEX"        # auto | flat-ip | ivf-flat-ip | ivf-pq-ip | hnsw-ip
ENV_MAX_INDEX_BYTES = "VIDPIPE_MAX_INDEX_BYTES"   # memory bound per float index, e.g. 4G
# Manifest params an approximate index reports next to its kind (search output, verify).
APPROX_REPORT_KEYS = ("recall_at_10", "recall_sample", "recall_target", "nprobe", "nlist", "pq_m", "rerank_factor")


@dataclass(frozen=True)
class IndexPolicy:
    """How float indexes are chosen: ``kind`` "auto" (by size and memory bound) or a fixed kind;
    ``exact_max_bytes`` overrides the exact/approximate threshold (tests use a small one)."""

    kind: str = "auto"
    max_index_bytes: int | None = None
    exact_max_bytes: int | None = None
    recall_target: float | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind != "auto" and self.kind not in FLOAT_KINDS:
            raise ValueError(f"unknown float index kind {self.kind!r}; choose auto or one of {', '.join(FLOAT_KINDS)}")

    @classmethod
    def from_env(cls) -> IndexPolicy:
        """``$VIDPIPE_FLOAT_INDEX`` and ``$VIDPIPE_MAX_INDEX_BYTES`` (suffixes K, M, G, T allowed)."""
        try:
            return cls(kind=os.environ.get(ENV_FLOAT_KIND, "").strip() or "auto",
                       max_index_bytes=parse_bytes(os.environ.get(ENV_MAX_INDEX_BYTES, "")))
        except ValueError as exc:
            raise UsageError(f"index settings: {exc}") from None

    def float_kind(self, n_rows: int, dim: int) -> str:
        """The kind for an index of ``n_rows`` vectors; a trained kind only from the size it can be
        trained at (`feasible_kind`): a smaller index is exact."""
        kind = self.kind if self.kind != "auto" else choose_float_kind(
            n_rows, dim, exact_max_bytes=self.exact_max_bytes, max_index_bytes=self.max_index_bytes)
        return feasible_kind(kind, n_rows)


def parse_bytes(text: str) -> int | None:
    """"4G" -> 4 * 2**30; "" -> None."""
    text = (text or "").strip().upper().removesuffix("B")
    if not text:
        return None
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1], 1)
    number = text[:-1] if text[-1] in "KMGT" else text
    try:
        return int(float(number) * scale)
    except ValueError:
        raise ValueError(f"not a size in bytes: {text!r}") from None


@dataclass
class IndexHandle:
    """A ready index and how it got here: "loaded", "built" (none before), "rebuilt" (bad or stale
    file quarantined), or "memory" (built, but the indexes folder could not be written)."""

    name: str
    index: Index
    manifest: Manifest | None
    status: str
    reason: str | None
    params: dict

    def describe(self) -> dict:
        """For search output: which structure answered, whether it is exhaustive and, when it is
        approximate, its measured recall@10 against exact search and its search parameters."""
        out = {"name": self.name, "kind": self.index.kind, "exact": bool(self.index.exact),
               "vectors": len(self.index), "status": self.status, "reason": self.reason,
               "generation": self.manifest.generation if self.manifest else None}
        if not self.index.exact:
            info = {**(self.manifest.params if self.manifest else {}), **self.params}
            out.update({key: info.get(key) for key in APPROX_REPORT_KEYS if key in info})
            if isinstance(self.index, FloatIndex) and self.index.kind == "ivf-pq-ip":
                out["rerank"] = "exact, from the case database" if self.index.reranks else None
        return out


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def face_model_keys(conn: sqlite3.Connection, table: str = "faces") -> dict[str, int]:
    """Embedder model_key -> number of stored vectors (``table``: faces or scenes)."""
    return {r[0]: r[1] for r in conn.execute(f"SELECT embedder, count(*) FROM {table} GROUP BY embedder ORDER BY embedder")}


def dominant_face_model(conn: sqlite3.Connection, table: str = "faces") -> str | None:
    """The embedder with the most vectors in the case (ties: the smallest key), or None."""
    keys = face_model_keys(conn, table)
    return max(sorted(keys), key=lambda k: keys[k]) if keys else None


def _source_params(conn: sqlite3.Connection, name: str, face_model_key: str | None) -> dict:
    if name in FLOAT_SOURCES:
        table = FLOAT_SOURCES[name][0]
        return {"model_key": face_model_key if face_model_key is not None else dominant_face_model(conn, table)}
    if name == "pdq":
        return {"signal": "pdq", "min_quality": PDQ_MIN_QUALITY}
    if name == "phash":
        return {"signal": "phash"}
    raise ValueError(f"unknown index {name!r}; known: {', '.join(INDEX_NAMES)}")


def _signal_where(params: dict) -> tuple[str, tuple]:
    if "min_quality" in params:
        return "s.signal = ? AND (s.quality IS NULL OR s.quality >= ?)", (params["signal"], params["min_quality"])
    return "s.signal = ?", (params["signal"],)


def fingerprint(conn: sqlite3.Connection, name: str, params: dict) -> dict:
    """What the index must reflect, computed from the database (cheap: aggregates only)."""
    if name in FLOAT_SOURCES:
        table, id_col = FLOAT_SOURCES[name]
        rows = conn.execute(f"SELECT run_id, count(*), total({id_col}), max({id_col}) FROM {table} WHERE embedder = ? "
                            "GROUP BY run_id ORDER BY run_id", (params["model_key"],)).fetchall()
    else:
        where, args = _signal_where(params)
        rows = conn.execute("SELECT s.run_id, s.stage_version, count(*), total(m.rowid), max(m.rowid) FROM signals s "
                            f"JOIN media m ON m.sha256 = s.sha256 WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2",
                            args).fetchall()
    groups = [list(r) for r in rows]
    return {"source": name, "rules": BUILD_RULES_VERSION, "schema_version": schema_version(conn),
            "filter": {k: v for k, v in params.items()}, "rows": int(sum(r[-3] for r in groups)),
            "max_id": max((int(r[-1]) for r in groups), default=None),
            "digest": hashlib.sha256(json.dumps(groups, default=str).encode()).hexdigest()}


def _face_rows(conn: sqlite3.Connection, model_key: str | None,
               name: str = "face") -> tuple[np.ndarray, np.ndarray, int]:
    """(row ids, float32 vectors, rows skipped for a malformed BLOB) of a float source."""
    table, id_col = FLOAT_SOURCES[name]
    n = conn.execute(f"SELECT count(*) FROM {table} WHERE embedder = ?", (model_key,)).fetchone()[0]
    first = conn.execute(f"SELECT length(embedding) FROM {table} WHERE embedder = ? ORDER BY {id_col} LIMIT 1",
                         (model_key,)).fetchone()
    dim = (first[0] // 4) if first and first[0] else FLOAT_DIM_DEFAULT[name]
    ids, vectors, kept, skipped = np.empty(n, np.int64), np.empty((n, dim), np.float32), 0, 0
    cur = conn.execute(f"SELECT {id_col}, embedding FROM {table} WHERE embedder = ? ORDER BY {id_col}", (model_key,))
    while batch := cur.fetchmany(_CHUNK):
        for face_id, blob in batch:
            if blob is None or len(blob) != dim * 4:
                skipped += 1
                continue
            ids[kept] = face_id
            vectors[kept] = np.frombuffer(blob, dtype="<f4")  # stored float32 little-endian
            kept += 1
    return ids[:kept], vectors[:kept], skipped


def db_vector_source(conn: sqlite3.Connection, name: str):
    """ids -> their stored float32 vectors, read from the case database (NaN rows for ids it no
    longer has): what a compressed (IVF-PQ) index re-ranks its shortlist with. Valid while ``conn`` is."""
    table, id_col = FLOAT_SOURCES[name]

    def fetch(ids: np.ndarray) -> np.ndarray:
        wanted = [int(i) for i in ids]
        found: dict[int, np.ndarray] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            for row_id, blob in conn.execute(f"SELECT {id_col}, embedding FROM {table} WHERE {id_col} IN "
                                             f"({','.join('?' * len(chunk))})", chunk):
                found[row_id] = np.frombuffer(blob, dtype="<f4")
        dim = next((len(v) for v in found.values()), 1)
        out = np.full((len(wanted), dim), np.nan, np.float32)
        for i, row_id in enumerate(wanted):
            v = found.get(row_id)
            if v is not None and len(v) == dim:
                out[i] = v
        return out

    return fetch


def _signal_rows(conn: sqlite3.Connection, params: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """(media rowids, packed codes, rows skipped for a malformed hex value)."""
    bits = SIGNAL_BITS[params["signal"]]
    where, args = _signal_where(params)
    ids, hexes, skipped = [], [], 0
    cur = conn.execute(f"SELECT m.rowid, s.value FROM signals s JOIN media m ON m.sha256 = s.sha256 WHERE {where} "
                       "ORDER BY m.rowid", args)
    while batch := cur.fetchmany(_CHUNK):
        for rowid, value in batch:
            if not isinstance(value, str) or len(value) != bits // 4:
                skipped += 1
                continue
            try:
                bytes.fromhex(value)
            except ValueError:
                skipped += 1
                continue
            ids.append(rowid)
            hexes.append(value)
    return np.asarray(ids, np.int64), codes_from_hex(hexes, bits), skipped


def build_index(conn: sqlite3.Connection, name: str, params: dict,
                policy: IndexPolicy | None = None) -> tuple[Index, dict]:
    """A fresh index from the database, plus build statistics for the manifest (for an
    approximate float index: its structure and the recall@10 measured against exact search)."""
    stats: dict = {}
    if name in FLOAT_SOURCES:
        policy = policy or IndexPolicy.from_env()
        ids, vectors, skipped = _face_rows(conn, params["model_key"], name)
        index: Index = FloatIndex(vectors.shape[1], policy.float_kind(len(ids) + skipped, vectors.shape[1]))
        index.build(ids, vectors)
        if not index.exact:
            kw = {} if policy.recall_target is None else {"target": policy.recall_target}
            stats.update(tune_nprobe(index, ids, vectors, **kw))
            stats.update(index.params)
        del vectors
    else:
        ids, vectors, skipped = _signal_rows(conn, params)
        index = BinaryIndex(SIGNAL_BITS[params["signal"]])
        index.build(ids, vectors)
    stats["skipped_rows"] = skipped
    if name == "pdq":
        stats["excluded_low_quality"] = conn.execute(
            "SELECT count(*) FROM signals WHERE signal = 'pdq' AND quality < ?", (params["min_quality"],)).fetchone()[0]
    return index, stats


def _indexes_dir(case) -> Path:
    if isinstance(case, CasePaths):
        return case.indexes
    return CasePaths(Path(case).resolve()).indexes


def ensure_indexes(case, conn: sqlite3.Connection, kinds=INDEX_NAMES, *,
                   face_model_key: str | None = None, policy: IndexPolicy | None = None) -> dict[str, IndexHandle]:
    """Load each requested index if it is intact and current, else (re)build it from the database.

    ``case`` is a case directory or `CasePaths`; ``conn`` may be read-only (only index files are
    written). ``face_model_key`` picks the embedder whose faces go into the face index (default:
    the one with the most faces). ``policy`` chooses float index kinds (default: from the
    environment, see `IndexPolicy.from_env`); a sound index of another kind than the policy now
    asks for is rebuilt (not quarantined: nothing is wrong with it).
    """
    directory = _indexes_dir(case)
    policy = policy or IndexPolicy.from_env()
    cleanup_temp_files(directory)
    out: dict[str, IndexHandle] = {}
    for name in kinds:
        params = _source_params(conn, name, face_model_key if name == "face" else None)
        fp = fingerprint(conn, name, params)
        loaded = load_index(directory, name, fp)
        if loaded.index is not None:
            wanted = policy.float_kind(fp["rows"], loaded.index.dim) if name in FLOAT_SOURCES else loaded.index.kind
            if wanted == loaded.index.kind:
                _attach_rerank(conn, name, loaded.index)
                out[name] = IndexHandle(name, loaded.index, loaded.manifest, "loaded", None, params)
                continue
            loaded.problem = f"index kind policy changed: {loaded.index.kind} -> {wanted}"
        index, stats = build_index(conn, name, params, policy)
        status = "built" if loaded.problem == "missing" else "rebuilt"
        try:
            manifest = save_index(directory, name, index, fp, {**params, **stats},
                                  previous_generation=loaded.manifest.generation if loaded.manifest else 0,
                                  producer_version=__version__)
        except OSError as exc:  # a read-only case folder still gets correct (in-memory) search
            log.warning("index %s could not be saved (%s); using it in memory", name, exc)
            manifest, status = None, "memory"
        reason = loaded.problem if loaded.problem != "missing" else None
        _attach_rerank(conn, name, index)
        out[name] = IndexHandle(name, index, manifest, status, reason, {**params, **stats})
    return out


def _attach_rerank(conn: sqlite3.Connection, name: str, index: Index) -> None:
    """A compressed float index re-scores its shortlist from the database's exact vectors."""
    if isinstance(index, FloatIndex) and index.kind == "ivf-pq-ip":
        index.rerank_source = db_vector_source(conn, name)


def _db_rows(conn: sqlite3.Connection, name: str, params: dict) -> int:
    if name in FLOAT_SOURCES:
        table = FLOAT_SOURCES[name][0]
        return conn.execute(f"SELECT count(*) FROM {table} WHERE embedder = ?", (params["model_key"],)).fetchone()[0]
    where, args = _signal_where(params)
    return conn.execute(f"SELECT count(*) FROM signals s JOIN media m ON m.sha256 = s.sha256 WHERE {where}",
                        args).fetchone()[0]


def index_counts(conn: sqlite3.Connection, indexes_dir: Path) -> dict:
    """Per index: vectors in the file (from a checksum-verified manifest) vs rows in the database.

    status: "ok"; "missing" (never built: search builds it); "stale" (the database changed since:
    search rebuilds it); "corrupt" (checksum/format problem: search quarantines and rebuilds it);
    "count_mismatch" (current fingerprint but a different count: a real inconsistency).
    ``ok`` is False only for "corrupt" and "count_mismatch". Reads files; writes nothing.
    """
    out = {}
    for name in INDEX_NAMES:
        manifest, _, problem = check_files(Path(indexes_dir), name, None)
        params = _source_params(conn, name,
                                manifest.params.get("model_key") if manifest and name in FLOAT_SOURCES else None)
        db_rows = _db_rows(conn, name, params)
        skipped = int(manifest.params.get("skipped_rows", 0)) if manifest else 0
        if problem == "missing":
            status = "missing"
        elif problem is not None:
            status = "corrupt"
        elif manifest.db_fingerprint != fingerprint(conn, name, params):
            status = "stale"
        elif manifest.vector_count + skipped != db_rows:
            status = "count_mismatch"
        else:
            status = "ok"
        out[name] = {"index": manifest.vector_count if manifest and problem is None else None, "db": db_rows,
                     "skipped": skipped, "status": status, "ok": status not in ("corrupt", "count_mismatch"),
                     "problem": problem if problem != "missing" else None,
                     "generation": manifest.generation if manifest else None,
                     "kind": manifest.kind if manifest else None,
                     "created_utc": manifest.created_utc if manifest else None,
                     "exact": (manifest.kind in (KIND_FLAT, KIND_BINARY_FLAT)) if manifest else None}
        if manifest and out[name]["exact"] is False:
            out[name].update({key: manifest.params.get(key) for key in APPROX_REPORT_KEYS if key in manifest.params})
        if name in FLOAT_SOURCES:
            out[name]["model_key"] = params["model_key"]
    return out


def media_index_ids(conn: sqlite3.Connection, name: str, params: dict, sha256s: list[str]) -> np.ndarray:
    """The ids of the rows of these contents that index ``name`` (built with ``params``) holds."""
    if not sha256s:
        return np.zeros(0, np.int64)
    marks = ",".join("?" * len(sha256s))
    if name in FLOAT_SOURCES:
        table, id_col = FLOAT_SOURCES[name]
        rows = conn.execute(f"SELECT {id_col} FROM {table} WHERE embedder = ? AND sha256 IN ({marks})",
                            (params["model_key"], *sha256s))
    else:
        where, args = _signal_where(params)
        rows = conn.execute(f"SELECT m.rowid FROM signals s JOIN media m ON m.sha256 = s.sha256 WHERE {where} "
                            f"AND s.sha256 IN ({marks})", (*args, *sha256s))
    return np.asarray([r[0] for r in rows], np.int64)


def remove_from_indexes(case, conn: sqlite3.Connection, handles: dict[str, IndexHandle],
                        removed: dict[str, np.ndarray], *, policy: IndexPolicy | None = None) -> dict[str, dict]:
    """After the database rows are gone: delete ``removed[name]`` ids from each index that was
    current before, save it under the database's new fingerprint, and report per index.

    An index that cannot delete (HNSW) or was not current is rebuilt from the database instead.
    Either way no file is left that still holds a removed vector: an index that cannot be saved
    is deleted (search rebuilds it), and the caller purges the quarantine.
    """
    directory = _indexes_dir(case)
    out: dict[str, dict] = {}
    for name, handle in handles.items():
        ids = removed.get(name, np.zeros(0, np.int64))
        params = _source_params(conn, name, handle.params.get("model_key") if name in FLOAT_SOURCES else None)
        fp = fingerprint(conn, name, params)
        report = {"kind": handle.index.kind, "requested": int(len(ids))}
        try:
            if handle.status == "memory" or handle.index.kind == "hnsw-ip":
                raise NotImplementedError
            report["removed"] = handle.index.remove(ids)
            if report["removed"] != len(ids):  # rows the build skipped (malformed): count afresh
                raise NotImplementedError
            stats = {**(handle.manifest.params if handle.manifest else handle.params), **params}
            if isinstance(handle.index, FloatIndex) and not handle.index.exact:
                stats.update(handle.index.params)  # the recall measured at build still describes the cells
            manifest = save_index(directory, name, handle.index, fp, stats, producer_version=__version__)
            report.update(status="updated", vectors=len(handle.index), generation=manifest.generation)
        except NotImplementedError:
            fresh = ensure_indexes(case, conn, (name,), face_model_key=params.get("model_key"), policy=policy)[name]
            report.update(status="rebuilt", vectors=len(fresh.index), removed=int(len(ids)),
                          generation=fresh.manifest.generation if fresh.manifest else None)
        except OSError as exc:
            for path in (index_path(directory, name), manifest_path(directory, name)):
                path.unlink(missing_ok=True)
            report.update(status="deleted", vectors=None, problem=f"could not save ({exc}); deleted")
        out[name] = report
    return out


def index_removal(case, conn: sqlite3.Connection, sha256s: list[str]) -> Callable[[], dict[str, dict]]:
    """Before the rows of these contents are deleted: every index as it is now (loaded, or rebuilt
    if it was stale) and the ids these contents hold in it. Returns the step to run once the rows
    are gone: it deletes those ids from the indexes (`remove_from_indexes`) and reports per index.

    `vidpipe.store.retention.remove_content` takes this function as its ``index_removal`` (the store
    layer does not build indexes itself)."""
    handles = ensure_indexes(case, conn, INDEX_NAMES)
    removed = {name: media_index_ids(conn, name, h.params, sha256s) for name, h in handles.items()}
    return lambda: remove_from_indexes(case, conn, handles, removed)


def refresh_indexes(paths, conn: sqlite3.Connection) -> dict[str, dict]:
    """Bring every index up to date with the case (derived data; search would do it too): per
    index, its vector count and whether it was loaded, built or rebuilt. The ingest summary's
    ``indexes`` (`vidpipe.pipeline.runner.run_ingest` takes this function as ``refresh_indexes``)."""
    handles = ensure_indexes(paths, conn)
    return {name: {"vectors": len(h.index), "status": h.status} for name, h in handles.items()}
