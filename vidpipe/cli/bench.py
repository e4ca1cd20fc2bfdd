"""``vidpipe bench index --kind face|scene|pdq --n N [--queries Q] [--index auto|flat|ivf|ivfpq|hnsw] --json``.

Builds the index the product would build over synthetic clustered data (see `indexer.bench` for
the generators) and prints one JSON object whose first keys are exactly
``n, dim, index, recall_at_10, p50_ms, p99_ms, exact_p50_ms, build_s, bytes_per_vector``; extra
keys follow (``speedup_vs_exact``, ``nprobe``, ``threads``, ...).
"""

from __future__ import annotations

import argparse

from vidpipe.cli.output import emit_json, info


def add_parser(sub: argparse._SubParsersAction) -> None:
    from indexer.bench import BENCH_KINDS, INDEX_CHOICES

    p = sub.add_parser("bench", help="benchmarks on synthetic data (index: recall and latency against exact)")
    bsub = p.add_subparsers(dest="bench_command", required=True)
    ix = bsub.add_parser("index", help="index recall@10 and single-query latency against exact search")
    ix.add_argument("--kind", required=True, choices=sorted(BENCH_KINDS))
    ix.add_argument("--n", required=True, type=int, help="vectors (codes for pdq) in the index")
    ix.add_argument("--queries", type=int, default=200, help="held-out queries (default 200)")
    ix.add_argument("--index", default="auto", choices=list(INDEX_CHOICES),
                    help="auto: the product's choice for this size; or force one structure")
    ix.add_argument("--threads", type=int, default=1, choices=(1, 2),
                    help="FAISS threads per query (default 1); the build uses every core")
    ix.add_argument("--seed", type=int, default=0)
    ix.add_argument("--intrinsic-dim", type=int, default=None,
                    help="face/scene generator: dimension of the identity subspace (default 16 face, 32 scene)")
    ix.add_argument("--max-index-bytes", default=None,
                    help="memory bound for --index auto (e.g. 256M): above it auto picks IVF-PQ")
    ix.add_argument("--json", action="store_true")
    ix.set_defaults(handler=run_index)


def run_index(args: argparse.Namespace) -> int:
    from indexer.bench import run_bench
    from vidpipe.errors import UsageError
    from vidpipe.search.build import parse_bytes

    if args.n < 1000 or args.queries < 1:
        raise UsageError("--n must be at least 1000 and --queries at least 1")
    try:
        max_bytes = parse_bytes(args.max_index_bytes or "")
        result = run_bench(args.kind, args.n, args.queries, args.index, threads=args.threads, seed=args.seed,
                           intrinsic=args.intrinsic_dim, max_index_bytes=max_bytes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        emit_json(result)
    else:
        info(f"{result['index']} over {result['n']} x {result['dim']}: recall@10 {result['recall_at_10']}, "
             f"p50 {result['p50_ms']} ms (exact {result['exact_p50_ms']} ms, x{result.get('speedup_vs_exact')}), "
             f"p99 {result['p99_ms']} ms, build {result['build_s']} s, {result['bytes_per_vector']} B/vector")
    return 0
