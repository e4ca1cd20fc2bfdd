"""``vidpipe verify --case DIR [--expect-head FILE [--public-key FILE]] [--json]`` — exit 0 when every check
passes, 1 otherwise."""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path

from vidpipe.cli.output import emit_json, info
from vidpipe.errors import EXIT_ERROR, DamagedCaseError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check database integrity and accounting; re-hash the evidence")
    p.add_argument("--case", required=True, type=Path)
    p.add_argument("--no-rehash", action="store_true", help="skip re-reading the evidence")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--expect-head", type=Path, metavar="FILE",
                   help="fail unless the audit chain still reaches this anchor: a checkpoint from `vidpipe audit "
                        "checkpoint` (signed) or an export naming the audit head (unsigned)")
    p.add_argument("--public-key", type=Path, metavar="FILE",
                   help="the checkpoint must be signed with this key (FILE.pub from `vidpipe audit keygen`)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vidpipe.reporting.verify import verify_case
    from vidpipe.store.casedb import open_case_readonly

    public_key = args.public_key.read_text().strip() if args.public_key else None
    try:
        paths, conn = open_case_readonly(args.case)
        result = verify_case(conn, workers=args.workers, rehash=not args.no_rehash, indexes_dir=paths.indexes,
                             expect_head=args.expect_head, public_key=public_key)
    except (sqlite3.DatabaseError, DamagedCaseError) as exc:  # a damaged case is a verification result
        return _report_damaged(args, str(exc))
    result["case"] = str(paths.root)
    if args.json:
        emit_json(result)
    else:
        for name, check in result["checks"].items():
            info(f"{'PASS' if check['ok'] else 'FAIL'}  {name}: "
                 + ", ".join(f"{k}={v}" for k, v in check.items() if k != "ok" and not isinstance(v, (list, dict))))
            for sub_name, sub_check in (check.get("indexes") or {}).items():
                info(f"        {sub_name}: {sub_check['status']} (index {sub_check['index']}, database {sub_check['db']})")
            for problem in check.get("problems") or []:
                info(f"        {problem['problem'] if isinstance(problem, dict) else problem}")
            if check.get("note"):
                info(f"        note: {check['note']}")
        info("case verified" if result["ok"] else "case verification FAILED")
    return 0 if result["ok"] else EXIT_ERROR


def _report_damaged(args: argparse.Namespace, reason: str) -> int:
    """``ok: false`` with the reason when the case database cannot even be read through."""
    reason = " ".join(reason.split())
    result = {"ok": False, "reason": reason, "problems": [reason], "case": str(args.case.resolve()),
              "checks": {"sqlite_integrity": {"ok": False, "messages": [reason]}}}
    if args.json:
        emit_json(result)
    else:
        info(f"FAIL  sqlite_integrity: {reason}")
        info("case verification FAILED")
    return EXIT_ERROR
