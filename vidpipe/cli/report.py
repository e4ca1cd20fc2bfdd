"""``vidpipe report --case DIR [--json]``"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidpipe.cli.output import emit_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="summarise a case: runs, provenance, counts, failures by reason")
    p.add_argument("--case", required=True, type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vidpipe.reporting.report import case_report, format_report
    from vidpipe.store.casedb import open_case_readonly

    paths, conn = open_case_readonly(args.case)
    rep = case_report(conn)
    rep["case"] = str(paths.root)
    if args.json:
        emit_json(rep)
    else:
        print(format_report(rep))
    return 0
