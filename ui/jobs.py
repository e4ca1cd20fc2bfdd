"""Background jobs started from the UI: an ingest run as a separate ``vidpipe ingest`` process.

The UI never ingests in its own process: the pipeline keeps its own sandboxing, locking and
provenance, and the run records the logged-in user as its operator.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ui.auth import User, can
from vidpipe.store import audit
from vidpipe.store.casedb import utc_now

REPO_ROOT = Path(__file__).resolve().parent.parent


def start_ingest(conn, case_root: Path, user: User, sources: list[str], workers: int,
                 faces: bool) -> tuple[subprocess.Popen | None, Path | None, str | None]:
    """Start ``vidpipe ingest``; returns ``(process, log file, None)`` or ``(None, None, why not)``."""
    if not can(user.role, "ingest"):
        return None, None, f"role {user.role} may not start an ingest"
    sources = [s.strip() for s in sources if s.strip()]
    if not sources:
        return None, None, "name at least one evidence folder, file or archive"
    missing = [s for s in sources if not os.path.isabs(s) or not os.path.lexists(s)]
    if missing:
        return None, None, f"not an existing absolute path: {', '.join(missing)}"
    log_dir = case_root / "logs"
    log_dir.mkdir(mode=0o700, exist_ok=True)
    log = log_dir / f"ui-ingest-{utc_now().replace(':', '')}.log"
    argv = [sys.executable, "-m", "vidpipe", "ingest", *sources, "--case", str(case_root),
            "--workers", str(max(1, workers)), "--json", "--no-progress"] + ([] if faces else ["--no-faces"])
    env = {**os.environ, "VIDPIPE_OPERATOR": user.name,
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=REPO_ROOT, env=env, start_new_session=True)
    audit.append(conn, user.name, "ingest_start", str(case_root),
                 {"sources": sources, "workers": workers, "faces": faces, "pid": proc.pid, "log": str(log)})
    return proc, log, None
