"""``vidpipe retention remove --case DIR --sha256 HEX [...] --reason TEXT --user NAME [--json]``.

Removes content from a case under a retention order: its derived rows, index vectors and
thumbnails go, a tombstone and a hash-chained audit entry record what was removed, when, by whom
and why (see `vidpipe.store.retention`). Evidence files are never touched. Exit 0 when done (also
when every SHA-256 was already removed), 2 for an unknown SHA-256 or a missing reason/user.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidpipe.cli.output import emit_json, info


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retention", help="retention: remove content's derived data, vectors and thumbnails")
    rsub = p.add_subparsers(dest="retention_command", required=True)
    rm = rsub.add_parser("remove", help="remove content (by SHA-256) from the case; evidence files stay untouched")
    rm.add_argument("--case", required=True, type=Path)
    rm.add_argument("--sha256", required=True, nargs="+", metavar="HEX", help="content to remove (one or more)")
    rm.add_argument("--reason", required=True, help="why (the retention order, e.g. its reference)")
    rm.add_argument("--user", required=True, help="who ordered the removal (recorded in the audit trail)")
    rm.add_argument("--json", action="store_true")
    rm.set_defaults(handler=run_remove)


def run_remove(args: argparse.Namespace) -> int:
    from vidpipe.provenance import run_environment
    from vidpipe.search.build import index_removal
    from vidpipe.store.casedb import WriteLock, open_case
    from vidpipe.store.retention import remove_content

    paths, conn = open_case(args.case, create=False)
    try:
        with WriteLock(paths):
            result = remove_content(paths, conn, args.sha256, reason=args.reason, user=args.user,
                                    operator=run_environment()["operator"], index_removal=index_removal)
    finally:
        conn.close()
    result = {"case": str(paths.root), **result}
    if args.json:
        emit_json(result)
        return 0
    for r in result["removed"]:
        rows = ", ".join(f"{t} {n}" for t, n in r["rows_deleted"].items()) or "no derived rows"
        info(f"removed {r['sha256']}: {r['paths']} path(s) now skipped (removed_retention); {rows}; "
             f"tombstone {r['tombstone_id']}, audit entry {r['audit_seq']}")
        if r["archive_members_kept"]:
            info(f"  note: {r['archive_members_kept']} archive member(s) are separate content and were kept")
    for r in result["already_removed"]:
        info(f"already removed: {r['sha256']} (tombstone {r['tombstone_id']}); file clean-up re-checked")
    for name, rep in result["indexes"].items():
        info(f"index {name}: {rep['status']}, {rep.get('removed', 0)} vector(s) removed, {rep.get('vectors')} left")
    return 0
