"""``vidpipe export --case DIR --format jsonl|csv [--out FILE]``"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from vidpipe.cli.output import info


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export one record per source file (JSONL, CSV or Project VIC JSON)")
    p.add_argument("--case", required=True, type=Path)
    p.add_argument("--format", required=True, choices=["jsonl", "csv", "vics"])
    p.add_argument("--out", type=Path, help="output file (default: stdout)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from vidpipe.reporting.export import write_csv, write_jsonl, write_vics
    from vidpipe.store.casedb import open_case_readonly

    paths, conn = open_case_readonly(args.case)
    write = {"jsonl": write_jsonl, "csv": write_csv,
             "vics": partial(write_vics, case_name=paths.root.name)}[args.format]
    if args.out is None:
        write(conn, sys.stdout)
        return 0
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: a reader never sees half an export.
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    with os.fdopen(fd, "w", newline="" if args.format == "csv" else None) as fh:
        n = write(conn, fh)
    os.replace(tmp, out)
    info(f"exported {n} records to {out}")
    return 0
