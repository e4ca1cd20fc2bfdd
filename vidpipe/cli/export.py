"""``vidpipe export --case DIR --format jsonl|csv|vics [--out FILE] [--audit-head] [--allow-broken-audit]``"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from vidpipe.cli.output import info
from vidpipe.errors import VidpipeError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export one record per source file (JSONL, CSV or Project VIC JSON)")
    p.add_argument("--case", required=True, type=Path)
    p.add_argument("--format", required=True, choices=["jsonl", "csv", "vics"])
    p.add_argument("--out", type=Path, help="output file (default: stdout)")
    p.add_argument("--audit-head", action="store_true",
                   help="jsonl/csv: end with a line naming the audit chain head (vics always names it)")
    p.add_argument("--allow-broken-audit", action="store_true",
                   help="export even when the audit trail does not hold, with a warning written into the export")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from vidpipe.reporting.export import audit_gate, write_audit_trailer, write_csv, write_jsonl, write_vics
    from vidpipe.store.casedb import open_case_readonly

    if args.out is not None and args.out.is_dir():
        raise VidpipeError(f"--out {args.out} is a folder; name the export file to write")
    paths, conn = open_case_readonly(args.case)
    # Refused (exit 1) when the audit trail does not hold, unless --allow-broken-audit: then the
    # export carries the warning (vics: IntegrityWarning; jsonl/csv: a last line) and stderr says it.
    warning = audit_gate(conn, args.allow_broken_audit)
    if warning:
        info(f"vidpipe: {warning['message']}: " + "; ".join(warning["problems"][:5]))
    write_records = {"jsonl": write_jsonl, "csv": write_csv,
                     "vics": partial(write_vics, case_name=paths.root.name, warning=warning)}[args.format]

    def write(conn, fh) -> int:
        n = write_records(conn, fh)
        if args.format != "vics" and (args.audit_head or warning):
            write_audit_trailer(args.format, fh, conn, warning)
        return n
    if args.out is None:
        write(conn, sys.stdout)
        return 0
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: a reader never sees half an export. mkstemp makes the
    # file 0600, and os.replace keeps that mode: the export is as private as the case.
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "w", newline="" if args.format == "csv" else None) as fh:
            n = write(conn, fh)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)  # no half export left beside the target
        raise
    info(f"exported {n} records to {out}")
    return 0
