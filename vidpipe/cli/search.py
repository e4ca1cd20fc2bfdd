"""``vidpipe search --case DIR --query FILE --mode face|scene|near-dup|video [--top-k K] [--json]``"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidpipe.cli.output import emit_json, info


def add_parser(sub: argparse._SubParsersAction) -> None:
    from vidpipe.search import DEFAULT_TOP_K, MODES

    p = sub.add_parser("search", help="find faces, scenes, near-duplicates or videos like a query file")
    p.add_argument("--case", required=True, type=Path, help="case directory made by `vidpipe ingest`")
    p.add_argument("--query", required=True, type=Path, help="query image (or video for --mode video)")
    p.add_argument("--mode", required=True, choices=MODES, help="what to compare")
    p.add_argument("--top-k", type=int, default=DEFAULT_TOP_K,
                   help=f"results per query face (face mode) or per query (default {DEFAULT_TOP_K})")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vidpipe.search.api import search

    result = search(args.case, args.query, args.mode, args.top_k)
    _audit(args, result)
    if args.json:
        emit_json(result)
    else:
        print(format_table(result))
    for warning in result.get("warnings", []):
        info(f"warning: {warning}")
    return 0


def _audit(args: argparse.Namespace, result: dict) -> None:
    """Searches are views of case data: each one goes into the audit trail with its query's hash."""
    import hashlib

    from vidpipe.provenance import run_environment
    from vidpipe.store import audit
    from vidpipe.store.casedb import open_case

    digest = hashlib.sha256(args.query.read_bytes()).hexdigest()
    _, conn = open_case(args.case, create=False)
    try:
        audit.append(conn, f"cli:{run_environment()['operator']}", "search", digest,
                     {"mode": args.mode, "query_path": str(args.query.resolve()), "top_k": args.top_k,
                      "results": len(result["results"]), "threshold": result.get("threshold")})
    finally:
        conn.close()


def _threshold_line(r: dict) -> str:
    src = r.get("threshold_source") or {}
    if r["threshold"] is None:
        return f"threshold: none ({src.get('note', 'not calibrated')})"
    if src.get("calibration_id") is not None:
        origin = f"calibration #{src['calibration_id']}"
    else:
        origin = f"default: {src.get('default')}"
    rates = f", measured FAR {src['far']:.4g}, FRR {src['frr']:.4g}" if src.get("far") is not None else ""
    extra = f" (distance <= {r['threshold_distance']})" if "threshold_distance" in r else ""
    target = f", target {src['target']}" if src.get("target") else ""
    return f"threshold: score >= {r['threshold']:.4f}{extra} [{origin}{rates}{target}]"


def _where(hit: dict) -> str:
    """What matched, per mode: the hash distance, the room evidence, the face box, the frame time."""
    media = hit["media"]
    parts = []
    if hit.get("signal"):
        parts.append(f"{hit['signal']} d={hit['distance']}")
    if "cosine" in hit:
        from vidpipe.search.scenes import describe_matches

        parts.append(describe_matches(hit))
    if "query_match_percent" in hit:
        parts.append(f"frames {hit['query_match_percent']:.0f}%/{hit['compared_match_percent']:.0f}%")
    if media.get("video_time_s") is not None:
        parts.append(f"t={media['video_time_s']:.2f}s")
    if hit.get("box"):
        parts.append(f"box {[round(v) for v in hit['box']]}")
    return " ".join(parts)


def format_table(r: dict) -> str:
    """The search result as a readable table (what --json prints as one object)."""
    q = r["query"]
    lines = [f"query: {q['path']}  mode: {q['mode']}", _threshold_line(r)]
    if q["mode"] == "face":
        lines.append(f"faces in query: {len(q['faces'])}")
        for i, face in enumerate(q["faces"]):
            lines.append(f"  face {i}: box {[round(v) for v in face['box']]} det {face['det_score']:.3f}")
    if not r["results"]:
        lines.append("no results")
        return "\n".join(lines)
    head = f"{'face':>4} {'rank':>4} {'score':>7} {'match':>5}  {'where':<22} path"
    lines.append(head)
    for hit in r["results"]:
        media = hit["media"]
        match = {True: "yes", False: "no", None: "?"}[hit.get("above_threshold")]
        where = _where(hit)
        qf = "-" if hit.get("query_face") is None else str(hit["query_face"])
        lines.append(f"{qf:>4} {hit['rank']:>4} {hit['score']:>7.4f} {match:>5}  {where:<22} {media['path']}")
    return "\n".join(lines)
