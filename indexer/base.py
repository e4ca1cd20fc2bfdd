"""The index contract every feature index follows (cf. python-threatexchange's SignalTypeIndex).

An index maps integer ids (int64, chosen by the caller: a face_id, a media rowid) to vectors and
answers nearest-neighbour queries. Two metrics exist:

- ``"ip"``: inner product on L2-normalised float32 vectors (cosine); higher = more similar.
- ``"hamming"``: bit distance between packed binary codes; lower = more similar.

Indexes serialise to bytes with FAISS's own format (never pickle). Bytes are only deserialised
after their SHA-256 has been checked against the manifest (see `indexer.store`), so a torn or
tampered file never reaches FAISS's parser.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

INDEX_FILE_SUFFIX = ".faiss"


def as_ids(ids) -> np.ndarray:
    """Ids as a contiguous int64 vector; refuses duplicates (an id names exactly one vector)."""
    out = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    if len(np.unique(out)) != len(out):
        raise ValueError("duplicate ids")
    return out


class Index(ABC):
    """A searchable set of (id, vector) pairs.

    Subclasses set `kind` (the FAISS structure, recorded in the manifest) and `metric`.
    ``search`` returns (scores, ids) arrays of shape (n_queries, k'), k' = min(k, len(self));
    for "ip" scores are similarities sorted descending, for "hamming" they are distances sorted
    ascending. ``range_search`` returns, per query, every vector within ``radius`` (ip: score >=
    radius; hamming: distance <= radius).
    """

    kind: ClassVar[str]
    metric: ClassVar[str]
    exact: ClassVar[bool] = True

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)

    @abstractmethod
    def build(self, ids, vectors) -> None:
        """Replace the contents with these vectors."""

    @abstractmethod
    def add(self, ids, vectors) -> None:
        """Add vectors under ids that are not yet in the index."""

    @abstractmethod
    def remove(self, ids) -> int:
        """Remove these ids; return how many were present."""

    @abstractmethod
    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best matches per query."""

    @abstractmethod
    def range_search(self, queries, radius: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every match within radius, per query, best first."""

    @abstractmethod
    def ids(self) -> np.ndarray:
        """All ids in the index (int64)."""

    @abstractmethod
    def to_bytes(self) -> bytes:
        """FAISS serialisation of the index."""

    @classmethod
    @abstractmethod
    def from_bytes(cls, data: bytes, kind: str) -> Index:
        """Inverse of `to_bytes` (only call on bytes whose checksum was verified)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of vectors."""

    def save(self, directory: Path, name: str) -> Path:
        """Write ``<directory>/<name>.faiss`` atomically (temp file, fsync, rename); return its path.

        This writes the index file alone; `indexer.store.save_index` adds the manifest that makes
        it trustworthy on load.
        """
        path = Path(directory) / f"{name}{INDEX_FILE_SUFFIX}"
        atomic_write_bytes(path, self.to_bytes())
        return path

    @classmethod
    def load(cls, directory: Path, name: str, kind: str | None = None) -> Index:
        """Read ``<directory>/<name>.faiss`` without any check (use `indexer.store.load_index` for that)."""
        data = (Path(directory) / f"{name}{INDEX_FILE_SUFFIX}").read_bytes()
        return cls.from_bytes(data, kind or cls.kind)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync it, rename over ``path``, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
