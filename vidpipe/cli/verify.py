"""``vidpipe verify --case DIR [--json]`` — exit 0 when every check passes, 1 otherwise."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vidpipe.cli.output import emit_json, info
from vidpipe.errors import EXIT_ERROR


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check database integrity and accounting; re-hash the evidence")
    p.add_argument("--case", required=True, type=Path)
    p.add_argument("--no-rehash", action="store_true", help="skip re-reading the evidence")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vidpipe.reporting.verify import verify_case
    from vidpipe.store.casedb import open_case_readonly

    paths, conn = open_case_readonly(args.case)
    result = verify_case(conn, workers=args.workers, rehash=not args.no_rehash, indexes_dir=paths.indexes)
    result["case"] = str(paths.root)
    if args.json:
        emit_json(result)
    else:
        for name, check in result["checks"].items():
            info(f"{'PASS' if check['ok'] else 'FAIL'}  {name}: "
                 + ", ".join(f"{k}={v}" for k, v in check.items() if k != "ok" and not isinstance(v, (list, dict))))
            for sub_name, sub_check in (check.get("indexes") or {}).items():
                info(f"        {sub_name}: {sub_check['status']} (index {sub_check['index']}, database {sub_check['db']})")
        info("case verified" if result["ok"] else "case verification FAILED")
    return 0 if result["ok"] else EXIT_ERROR
