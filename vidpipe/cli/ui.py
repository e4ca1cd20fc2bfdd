"""``vidpipe ui --case DIR [--port P]`` — the review UI on http://127.0.0.1:P/ (this machine only)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vidpipe.cli.output import emit_json, info

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_PORT = 8501  # Streamlit's default


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="start the review UI (Streamlit, bound to 127.0.0.1)")
    p.add_argument("--case", required=True, type=Path)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--dry-run", action="store_true", help="print the server command as JSON and exit")
    p.set_defaults(handler=run)


def server_command(case_root: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of the server process."""
    argv = [sys.executable, "-m", "ui.serve", "--case", str(case_root), "--port", str(port)]
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return argv, {**os.environ, "PYTHONPATH": path}


def run(args: argparse.Namespace) -> int:
    from vidpipe.errors import UsageError
    from vidpipe.store.casedb import open_case

    if not 1 <= args.port <= 65535:
        raise UsageError("--port must be between 1 and 65535")
    paths, conn = open_case(args.case, create=False)  # applies the review tables' migration
    n_users = conn.execute("SELECT COUNT(*) FROM users WHERE disabled = 0").fetchone()[0]
    conn.close()
    argv, env = server_command(paths.root, args.port)
    if args.dry_run:
        emit_json({"argv": argv, "url": f"http://127.0.0.1:{args.port}/", "users": n_users})
        return 0
    if n_users == 0:
        info(f"no accounts yet: create one with `vidpipe user add NAME --role admin --case {paths.root} "
             "--password-stdin`")
    info(f"vidpipe review UI for {paths.root} on http://127.0.0.1:{args.port}/ (Ctrl-C stops it)")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # the server replaces this process; signals go straight to it
    return 0  # not reached
