"""Checks a case folder must pass before vidpipe reads or writes it.

A case holds biometric vectors and password hashes and is itself a record of the examination, so:
it stays private to its owner (folders 0700, files 0600, by umask so no file is ever briefly
readable by others); it is never reached through a symlink (which could lead into the evidence or
someone else's files); it never lives inside the evidence it describes (the next ingest would
take the case's own files as evidence, and writes would land in the evidence tree); and a
damaged case.sqlite is reported, never silently re-created or half-read.
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Iterable
from pathlib import Path

from vidpipe.errors import CaseError, DamagedCaseError, UsageError

# Group and other get no access to anything vidpipe creates (umask bits).
PRIVATE_UMASK = 0o077
# Names inside a case that vidpipe opens; none of them may be a symlink.
CASE_ENTRIES = ("case.sqlite", "case.sqlite-wal", "case.sqlite-shm", "case.sqlite-journal", "indexes", "thumbs",
                "queries", "logs", ".write.lock")
# The first 16 bytes of every SQLite 3 database (https://www.sqlite.org/fileformat.html#the_database_header).
SQLITE_MAGIC = b"SQLite format 3\x00"


def private_umask() -> None:
    """Add group/other bits to the process umask so files and folders made from now on are private.

    Process-wide on purpose: every file a case process writes (SQLite WAL/SHM, index temp files,
    thumbnails, exports, logs) and every worker it starts inherits it. Only ever tightens: the
    umask is never 0 in between, so no other thread can create a world-writable file meanwhile.
    """
    old = os.umask(PRIVATE_UMASK)
    if old & ~PRIVATE_UMASK:
        os.umask(old | PRIVATE_UMASK)


def refuse_case_inside_sources(case_dir: Path, sources: Iterable[str | os.PathLike]) -> None:
    """Raise UsageError (exit 2) when the case folder is, or is inside, one of the evidence sources.

    Both sides are resolved first (symlinks and ``..``), so a link cannot hide the nesting.
    """
    case = Path(os.path.realpath(case_dir))
    for source in sources:
        root = Path(os.path.realpath(source))
        if case == root or root in case.parents:
            raise UsageError(f"the case folder {case} is inside the evidence source {root}: put the case "
                             "outside the evidence (evidence is read-only, and the case would ingest itself)")


def check_case_folder(case_dir: Path) -> None:
    """The path given as ``--case`` must be a real folder (or not exist yet), never a symlink or a file."""
    if os.path.islink(case_dir):
        raise CaseError(f"the case folder {case_dir} is a symlink; vidpipe does not follow it: "
                        f"give the real folder ({os.path.realpath(case_dir)}) as --case")
    if os.path.lexists(case_dir) and not os.path.isdir(case_dir):
        raise CaseError(f"the case path {case_dir} is not a folder")


def check_no_symlinked_entries(root: Path) -> None:
    """Refuse a case whose database, indexes, thumbnails, ... are symlinks (never followed)."""
    for name in CASE_ENTRIES:
        if os.path.islink(root / name):
            raise CaseError(f"{root / name} is a symlink; vidpipe never follows symlinks inside a case: "
                            "replace it with the real file or folder")


def check_private(root: Path) -> None:
    """Refuse a case that group or other users can access, naming the ``chmod`` that fixes it.

    Checks the folder, vidpipe's entries in it and the files in ``indexes/`` (face vectors);
    anything deeper sits behind a folder this check already requires to be private. Other files a
    user keeps in the folder are theirs to manage.
    """
    candidates = [root, *(root / name for name in CASE_ENTRIES)]
    try:
        with os.scandir(root / "indexes") as entries:
            candidates += [Path(e.path) for e in entries if not e.is_symlink()]
    except (FileNotFoundError, NotADirectoryError):
        pass
    for path in candidates:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue  # absent, or removed meanwhile (a temp file)
        if mode & 0o077:
            where = "the folder" if path == root else str(path.relative_to(root))
            raise CaseError(f"case {root} can be accessed by other users ({where} has mode "
                            f"{stat.S_IMODE(mode):o}) and holds biometric data and password hashes; run "
                            f"`chmod -R go-rwx {shlex.quote(str(root))}` and try again")


def check_db_file(db: Path) -> None:
    """Refuse a case.sqlite that is empty, not SQLite, or shorter than its header says.

    SQLite would treat a 0-byte file as a new empty database (and migrations would quietly build
    a fresh case over the damaged one) and reads a truncated file until it hits a missing page.
    The size check is skipped while a WAL file exists: a checkpoint may then be extending the file.
    """
    wal = db.with_name(db.name + "-wal")
    if not stat.S_ISREG(os.lstat(db).st_mode):
        raise CaseError(f"{db} is not a regular file")
    before = os.stat(db)
    if before.st_size == 0:
        raise DamagedCaseError(f"{db} is empty (0 bytes): the case database is damaged; vidpipe never re-creates it "
                        "over a case: restore it from a backup, or use a new --case folder")
    with open(db, "rb") as fh:
        header = fh.read(100)
    page_size = int.from_bytes(header[16:18], "big") if len(header) == 100 else 0
    page_size = 65536 if page_size == 1 else page_size
    if not header.startswith(SQLITE_MAGIC) or page_size < 512 or page_size & (page_size - 1):
        raise DamagedCaseError(f"{db} is not a SQLite database (damaged header): restore it from a backup")
    if os.path.exists(wal) or os.stat(db).st_mtime_ns != before.st_mtime_ns:
        return
    pages = int.from_bytes(header[28:32], "big")
    header_size_valid = pages > 0 and header[92:96] == header[24:28]
    if before.st_size % page_size or (header_size_valid and pages * page_size > before.st_size):
        expected = f"{pages * page_size} bytes" if header_size_valid else f"a multiple of {page_size} bytes"
        raise DamagedCaseError(f"{db} is truncated ({before.st_size} bytes, its header says {expected}): "
                        "restore it from a backup")
