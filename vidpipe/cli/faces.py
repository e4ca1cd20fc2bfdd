"""``vidpipe faces cluster|link`` — people across a case."""

from __future__ import annotations

import argparse
from pathlib import Path

from vidpipe.cli.output import emit_json, info


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("faces", help="people across the case: cluster faces, record reviewer constraints")
    fsub = p.add_subparsers(dest="faces_command", required=True)
    c = fsub.add_parser("cluster", help="cluster all faces into persons under every constraint")
    c.add_argument("--case", required=True, type=Path)
    c.add_argument("--threshold", type=float, help="cosine threshold (default: the case's face calibration)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=run_cluster)
    link = fsub.add_parser("link", help="record that two faces are (--must) or are not (--cannot) one person")
    link.add_argument("--case", required=True, type=Path)
    kind = link.add_mutually_exclusive_group(required=True)
    kind.add_argument("--must", action="store_true")
    kind.add_argument("--cannot", action="store_true")
    link.add_argument("face_a", type=int)
    link.add_argument("face_b", type=int)
    link.add_argument("--reviewer", required=True)
    link.add_argument("--reason")
    link.set_defaults(handler=run_link)


def run_cluster(args: argparse.Namespace) -> int:
    from vidpipe.people.store import run_clustering
    from vidpipe.store.casedb import WriteLock, open_case

    paths, conn = open_case(args.case, create=False)
    with WriteLock(paths):
        summary = run_clustering(conn, args.threshold)
    if args.json:
        emit_json(summary)
    else:
        info(f"{summary['faces']} faces -> {summary['persons']} persons ({summary['singletons']} seen once) "
             f"at cosine >= {summary['threshold']:.3f} ({summary['threshold_source']['source']})")
        for p in summary["largest"]:
            info(f"  person {p['person_id']}: {p['faces']} faces in {p['files']} files")
    return 0


def run_link(args: argparse.Namespace) -> int:
    from vidpipe.people.store import add_constraint
    from vidpipe.store.casedb import WriteLock, open_case

    paths, conn = open_case(args.case, create=False)
    with WriteLock(paths):
        add_constraint(conn, args.face_a, args.face_b, "must_link" if args.must else "cannot_link", args.reviewer,
                       args.reason)
    info("constraint recorded")
    return 0
