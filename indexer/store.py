"""Index persistence: atomic files plus a manifest that ties each index to the case database.

Layout under ``CASE/indexes/``::

    <name>.faiss           FAISS serialisation (never pickle)
    <name>.manifest.json   generation, kind, dim, vector count, SHA-256 of the .faiss file,
                           the database fingerprint it was built from, vidpipe version, time
    quarantine/            files that failed a check, kept for inspection, never loaded again
    .<name>.faiss.*.tmp    a write in progress, or one a killed process left behind (removed by
                           `cleanup_temp_files` once it has not changed for `TEMP_STALE_S`)

Both files are written to a temp file, fsynced and renamed (`os.replace`), index first, manifest
last: a crash in between leaves a manifest whose checksum does not match, which the loader
detects. Loading trusts nothing: missing manifest, checksum, size, format, vector count and the
database fingerprint are all checked, and any failure quarantines the files so the caller
rebuilds from the database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from indexer.base import INDEX_FILE_SUFFIX, Index, atomic_write_bytes
from indexer.binary_index import KIND_BINARY_FLAT, BinaryIndex
from indexer.float_index import FLOAT_KINDS, FloatIndex

log = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"
QUARANTINE_DIR = "quarantine"
# Quarantined sets kept per index name: enough to inspect what went wrong, bounded because every
# ingest makes the indexes stale and stale files are quarantined too.
QUARANTINE_KEEP = 3
MANIFEST_FORMAT = 1
INDEX_CLASSES: dict[str, type[Index]] = {**{kind: FloatIndex for kind in FLOAT_KINDS}, KIND_BINARY_FLAT: BinaryIndex}
# A temp file untouched this long belongs to no live writer (a writer appends continuously).
TEMP_STALE_S = 600


@dataclass
class Manifest:
    """What an index file is and what it was built from."""

    name: str
    generation: int
    kind: str
    metric: str
    dim: int
    vector_count: int
    index_sha256: str
    index_bytes: int
    db_fingerprint: dict
    params: dict = field(default_factory=dict)
    created_utc: str = ""
    vidpipe_version: str = ""
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


@dataclass
class LoadResult:
    """An index that passed every check, or why none was loaded (``problem``)."""

    index: Index | None
    manifest: Manifest | None
    problem: str | None  # None | "missing" | a reason the files were quarantined


def index_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}{INDEX_FILE_SUFFIX}"


def manifest_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}{MANIFEST_SUFFIX}"


def cleanup_temp_files(directory: Path, older_than_s: float = TEMP_STALE_S) -> list[Path]:
    """Delete temp files left by writes that never finished (a killed process); return them.

    Only names `atomic_write_bytes` makes (``.<file>.<random>.tmp``) and only when unchanged for
    ``older_than_s``, so a concurrent writer's file in progress is left alone.
    """
    removed: list[Path] = []
    try:
        candidates = list(Path(directory).glob(".*.tmp"))
    except OSError:
        return removed
    now = time.time()
    for path in candidates:
        try:
            if now - path.stat().st_mtime >= older_than_s:
                path.unlink()
                removed.append(path)
        except OSError:  # gone already, or a read-only folder: nothing to do
            continue
    if removed:
        log.info("removed %d unfinished index temp file(s) in %s", len(removed), directory)
    return removed


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(directory: Path, name: str) -> Manifest | None:
    """The manifest, or None when there is none; raises ValueError when it is unreadable."""
    path = manifest_path(directory, name)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"manifest unreadable: {exc}") from exc
    try:
        manifest = Manifest(**raw)
    except TypeError as exc:
        raise ValueError(f"manifest fields wrong: {exc}") from exc
    for name, kind in _FIELD_TYPES.items():
        value = getattr(manifest, name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"manifest field {name} has the wrong type ({type(value).__name__})")
    return manifest


_FIELD_TYPES = {"name": str, "generation": int, "kind": str, "metric": str, "dim": int, "vector_count": int,
                "index_sha256": str, "index_bytes": int, "db_fingerprint": dict, "params": dict, "format": int}


def save_index(directory: Path, name: str, index: Index, db_fingerprint: dict, params: dict | None = None,
               previous_generation: int = 0, producer_version: str = "") -> Manifest:
    """Persist ``index`` and its manifest atomically; the generation counts up from the last manifest
    (the one on disk, ``previous_generation``, or one in quarantine: it never goes back).
    ``producer_version``: the caller's version, recorded in the manifest (``vidpipe_version``)."""
    directory = Path(directory)
    try:
        previous = read_manifest(directory, name)
    except ValueError:
        previous = None
    data = index.to_bytes()
    last = max(previous.generation if previous else 0, previous_generation, _quarantined_generation(directory, name))
    manifest = Manifest(
        name=name, generation=last + 1, kind=index.kind,
        metric=index.metric, dim=index.dim, vector_count=len(index), index_sha256=sha256_bytes(data),
        index_bytes=len(data), db_fingerprint=db_fingerprint, params=dict(params or {}),
        created_utc=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        vidpipe_version=producer_version)
    atomic_write_bytes(index_path(directory, name), data)
    atomic_write_bytes(manifest_path(directory, name), manifest.to_json().encode())
    return manifest


def _quarantined_generation(directory: Path, name: str) -> int:
    """The highest generation among quarantined manifests of ``name`` (0 when none)."""
    best = 0
    qdir = Path(directory) / QUARANTINE_DIR
    for path in (qdir.glob(f"*.{name}{MANIFEST_SUFFIX}") if qdir.is_dir() else []):
        try:
            generation = json.loads(path.read_text(encoding="utf-8")).get("generation")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            continue
        if isinstance(generation, int) and not isinstance(generation, bool):
            best = max(best, generation)
    return best


def check_files(directory: Path, name: str, db_fingerprint: dict | None) -> tuple[Manifest | None, bytes | None, str | None]:
    """Verify the manifest and the index bytes without deserialising; (manifest, bytes, problem)."""
    directory = Path(directory)
    ipath = index_path(directory, name)
    try:
        manifest = read_manifest(directory, name)
    except ValueError as exc:
        return None, None, str(exc)
    if manifest is None:
        return None, None, "index file without manifest" if ipath.exists() else "missing"
    if manifest.format != MANIFEST_FORMAT or manifest.kind not in INDEX_CLASSES:
        return manifest, None, f"unsupported manifest format {manifest.format} / kind {manifest.kind}"
    try:
        data = ipath.read_bytes()
    except FileNotFoundError:
        return manifest, None, "manifest without index file"
    if len(data) != manifest.index_bytes or sha256_bytes(data) != manifest.index_sha256:
        return manifest, None, f"checksum mismatch ({len(data)} bytes, manifest says {manifest.index_bytes})"
    if db_fingerprint is not None and manifest.db_fingerprint != db_fingerprint:
        return manifest, data, "stale: the case database changed since the index was built"
    return manifest, data, None


def load_index(directory: Path, name: str, db_fingerprint: dict) -> LoadResult:
    """Load an index that matches its manifest and the database; otherwise quarantine and say why."""
    manifest, data, problem = check_files(directory, name, db_fingerprint)
    if problem == "missing":
        return LoadResult(None, None, problem)
    if problem is None:
        try:
            index = INDEX_CLASSES[manifest.kind].from_bytes(data, manifest.kind)
        except Exception as exc:  # noqa: BLE001 - any parser failure means the file is not usable
            problem = f"deserialise failed: {type(exc).__name__}: {exc}"
        else:
            if len(index) != manifest.vector_count or index.dim != manifest.dim:
                problem = f"holds {len(index)} x {index.dim}, manifest says {manifest.vector_count} x {manifest.dim}"
            else:
                return LoadResult(index, manifest, None)
    quarantine(directory, name, problem)
    return LoadResult(None, manifest, problem)


def quarantine(directory: Path, name: str, reason: str) -> list[Path]:
    """Move an index's files to ``quarantine/`` with a timestamp and a note of the reason."""
    directory = Path(directory)
    qdir = directory / QUARANTINE_DIR
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    moved: list[Path] = []
    for src in (index_path(directory, name), manifest_path(directory, name)):
        if not src.exists():
            continue
        qdir.mkdir(parents=True, exist_ok=True)
        dst = qdir / f"{stamp}.{src.name}"
        try:
            os.replace(src, dst)
        except FileNotFoundError:  # another process moved it first
            continue
        moved.append(dst)
    if moved:
        atomic_write_bytes(qdir / f"{stamp}.{name}.reason.txt", (reason + "\n").encode())
        log.warning("index %s quarantined (%s); it will be rebuilt from the case database", name, reason)
        _prune_quarantine(qdir, name)
    return moved


def _prune_quarantine(qdir: Path, name: str) -> None:
    suffixes = (INDEX_FILE_SUFFIX, MANIFEST_SUFFIX, ".reason.txt")
    stamps: dict[str, list[Path]] = {}
    for p in qdir.iterdir():
        stamp, _, rest = p.name.partition(".")
        if rest in (f"{name}{s}" for s in suffixes):
            stamps.setdefault(stamp, []).append(p)
    for stamp in sorted(stamps)[:-QUARANTINE_KEEP]:
        for p in stamps[stamp]:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
