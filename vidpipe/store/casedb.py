"""Opening a case: directory layout, SQLite settings, migrations and the single-writer lock."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from vidpipe.errors import CaseLockedError, UsageError
from vidpipe.store.case_guard import (
    check_case_folder,
    check_db_file,
    check_no_symlinked_entries,
    check_private,
    private_umask,
)
from vidpipe.store.schema import MIGRATIONS

DB_NAME = "case.sqlite"
LOCK_NAME = ".write.lock"


def utc_now() -> str:
    """Current time as an ISO 8601 UTC string with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class CasePaths:
    """Where a case keeps its files."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / DB_NAME

    @property
    def indexes(self) -> Path:
        return self.root / "indexes"

    @property
    def thumbs(self) -> Path:
        return self.root / "thumbs"


def connect(db_path: Path, *, readonly: bool = False, immutable: bool = False) -> sqlite3.Connection:
    """Connect with the settings every vidpipe connection uses.

    ``immutable`` (read-only only) tells SQLite that nobody writes the file, so it needs no
    ``-shm`` beside it: how a checkpointed case in a read-only folder can still be read.
    """
    if readonly:
        # Quoted: a case path may hold '?', '#' or '%', which a file: URI would otherwise misread.
        uri = f"file:{quote(str(db_path))}?mode=ro" + ("&immutable=1" if immutable else "")
        conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    else:
        conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode survives a killed process (only a power loss can drop the last commits).
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration not yet recorded; return the schema version now in force."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                 "description TEXT NOT NULL, applied_utc TEXT NOT NULL)")
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for version, description, sql in MIGRATIONS:
        if version in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?,?,?)", (version, description, utc_now()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return max([v for v, _, _ in MIGRATIONS] + list(applied))


def _split_sql(script: str) -> list[str]:
    # sqlite3.complete_statement keeps CREATE VIEW ... CASE ... END; bodies whole.
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def open_case(case_dir: Path, *, create: bool) -> tuple[CasePaths, sqlite3.Connection]:
    """Open (and with ``create`` make) a case directory and its migrated database.

    Refuses (CaseError) a case reached through a symlink, a symlinked database/indexes/thumbs, a case
    other users can access, and a damaged case.sqlite; makes new cases private (0700/0600).
    """
    paths = _checked_paths(case_dir)
    if not os.path.lexists(paths.db):
        if not create:
            raise UsageError(f"no case database at {paths.db} (run `vidpipe ingest ... --case {case_dir}` first)")
        _create_database(paths)
    else:
        check_private(paths.root)
        check_db_file(paths.db)
    conn = connect(paths.db)
    migrate(conn)
    return paths, conn


def open_case_readonly(case_dir: Path) -> tuple[CasePaths, sqlite3.Connection]:
    """Open an existing case for reading only (reports, exports, search); same refusals as `open_case`."""
    paths = _checked_paths(case_dir)
    if not os.path.lexists(paths.db):
        raise UsageError(f"no case database at {paths.db}")
    check_private(paths.root)
    check_db_file(paths.db)
    # A read-only folder cannot take the -shm file SQLite wants; with no WAL left (a cleanly closed
    # case) the file is complete and nobody can be writing it, so it is read as immutable.
    immutable = not os.access(paths.root, os.W_OK) and not os.path.exists(f"{paths.db}-wal")
    return paths, connect(paths.db, readonly=True, immutable=immutable)


def _checked_paths(case_dir: Path) -> CasePaths:
    private_umask()  # before anything is created: files of this process are private from here on
    check_case_folder(case_dir)
    paths = CasePaths(case_dir.resolve())
    check_no_symlinked_entries(paths.root)
    return paths


def _create_database(paths: CasePaths) -> None:
    """Make a new case.sqlite under a temporary name and link it into place when migrated, so a run
    killed meanwhile never leaves a 0-byte case.sqlite (which `check_db_file` rightly refuses)."""
    paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.stat(paths.root).st_mode & 0o077:
        os.chmod(paths.root, 0o700)  # a folder the user made beforehand; the case inside must be private
    tmp = paths.root / f".{DB_NAME}.{os.getpid()}.new"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    conn = connect(tmp)
    try:
        migrate(conn)
    finally:
        conn.close()  # checkpoints and removes the WAL: the file alone is the whole database
    try:
        os.link(tmp, paths.db)
    except FileExistsError:
        pass  # another process created the case first; theirs is used
    except OSError:  # a filesystem without hard links
        if not os.path.lexists(paths.db):
            os.rename(tmp, paths.db)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Join the caller's transaction if one is open, else run in our own ``BEGIN IMMEDIATE`` one
    (so two writers cannot both read a state and then both write on top of it)."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        if own:
            conn.execute("COMMIT")
    except BaseException:
        if own and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class WriteLock:
    """An exclusive advisory lock: one writing process per case (the single-writer rule)."""

    def __init__(self, paths: CasePaths) -> None:
        self._path = paths.root / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> WriteLock:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CaseLockedError(f"another vidpipe process is writing to {self._path.parent}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
