"""``vidpipe hashlist import FILE --case DIR`` and ``vidpipe hashlist list --case DIR``.

Import stores a known-hash list (CSV or Project VIC JSON) in the case, then re-matches every
media item of the case against every list, so hits show in exports at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vidpipe.cli.output import emit_json, info


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hashlist", help="known-hash lists: import (CSV or Project VIC JSON), list")
    hsub = p.add_subparsers(dest="hashlist_command", required=True)
    imp = hsub.add_parser("import", help="import a hash list and match the case against it")
    imp.add_argument("file", type=Path, metavar="FILE",
                     help="CSV with header list,category,md5,sha1,sha256,pdq, or Project VIC JSON")
    imp.add_argument("--case", required=True, type=Path)
    imp.add_argument("--name", help="list name for rows that do not name one (default: the file name without "
                                    "extension); a CSV's `list` column wins where it is filled")
    imp.add_argument("--negative", action="store_true",
                     help="a list of known false positives: its matches suppress hits on the same media")
    imp.add_argument("--categories", type=Path, metavar="MAP.csv",
                     help="code,label rows naming this list's category codes (shown in exports as given)")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(handler=run_import)
    lst = hsub.add_parser("list", help="the imported lists with their entry and hit counts")
    lst.add_argument("--case", required=True, type=Path)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=run_list)


def run_import(args: argparse.Namespace) -> int:
    from vidpipe.errors import UsageError
    from vidpipe.hashlists.match import match_case
    from vidpipe.hashlists.parse import iter_rows, read_category_map
    from vidpipe.hashlists.store import file_sha256, import_rows
    from vidpipe.provenance import run_environment
    from vidpipe.store import audit
    from vidpipe.store.casedb import WriteLock, open_case

    source = args.file.resolve()
    if not source.is_file():
        raise UsageError(f"no such hash list file: {args.file}")
    categories = None
    if args.categories is not None:
        if not args.categories.is_file():
            raise UsageError(f"no such category map: {args.categories}")
        categories = read_category_map(args.categories)
    rows = iter_rows(source, args.name or source.stem)   # a file that is no hash list fails here
    # A case may be created here: lists can be imported before the evidence is ingested.
    paths, conn = open_case(args.case, create=True)
    with WriteLock(paths):
        source_sha256 = file_sha256(source)
        result = import_rows(conn, rows, source_path=source, source_sha256=source_sha256,
                             negative=args.negative, categories=categories)
        result["match"] = match_case(conn)
        audit.append(conn, f"cli:{run_environment()['operator']}", "hashlist_import",
                     ",".join(lst["name"] for lst in result["lists"]) or None,
                     {"source": result["source"], "negative": args.negative, "imported": result["imported"],
                      "bad_rows": result["bad_rows"], "lists": [lst["list_id"] for lst in result["lists"]]})
    result = {"case": str(paths.root), **result}
    if args.json:
        emit_json(result)
    else:
        _print_import(result)
    return 0


def _print_import(result: dict[str, Any]) -> None:
    for lst in result["lists"]:
        kind = "negative list" if lst["negative"] else "list"
        state = "already imported from this file, unchanged" if lst["already_imported"] else "imported"
        info(f"{kind} {lst['name']!r}: {lst['entries']} entries ({state})")
    if result["bad_rows"]:
        reasons = ", ".join(f"{k} {v}" for k, v in result["bad_reasons"].items())
        info(f"{result['bad_rows']} of {result['rows']} rows not imported ({reasons}); first: "
             + ", ".join(f"{b['where']} ({b['reason']})" for b in result["bad_examples"][:5]))
    m = result["match"]
    info(f"{m['flagged_media']} of {m['media']} media items match a list "
         f"(md5 {m['hits']['md5']}, sha1 {m['hits']['sha1']}, sha256 {m['hits']['sha256']}, pdq {m['hits']['pdq']}; "
         f"{m['suppressed']} suppressed by negative lists) in {m['elapsed_s']:.2f} s")


def run_list(args: argparse.Namespace) -> int:
    from vidpipe.hashlists.store import list_lists
    from vidpipe.store.casedb import open_case_readonly

    _, conn = open_case_readonly(args.case)
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='hashlists'").fetchone()
    lists = list_lists(conn) if exists else []
    if args.json:
        emit_json({"lists": lists})
    else:
        for lst in lists:
            info(f"{lst['list_id']:4d} {lst['name']:24s} {'negative' if lst['negative'] else 'positive'} "
                 f"{lst['entries']:>10d} entries {lst['hits']:>6d} hits  {lst['source_path']}")
    return 0
