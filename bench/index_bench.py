"""Index recall and single-query latency against exact search, on synthetic clustered data.

Baseline ("exact"): the exhaustive scan one query at a time, in the same run, on the same
threads (FAISS's flat inner-product scan for face/scene, `IndexBinaryFlat` range search for PDQ).
Each line is one `vidpipe bench index --json` result; the ratio is exact p50 / index p50.

    python -m bench.index_bench [--n 200000] [--queries 200] [--json]

The default (200k per kind: face IVF-Flat and IVF-PQ, scene IVF-Flat, PDQ) takes a few minutes on
two cores. The issue's 1M evidence: ``vidpipe bench index --kind face --n 1000000 --json`` (and
``--index ivfpq``, ``--kind pdq``); results in notes/index_readme_section.md.
"""

from __future__ import annotations

import argparse
import json

RUNS = [("face", "ivf"), ("face", "ivfpq"), ("scene", "ivf"), ("pdq", "auto")]


def main(argv: list[str] | None = None) -> int:
    from indexer.bench import run_bench

    parser = argparse.ArgumentParser(prog="python -m bench.index_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, choices=(1, 2))
    parser.add_argument("--json", action="store_true", help="one JSON line per run, nothing else")
    args = parser.parse_args(argv)
    for kind, index in RUNS:
        result = run_bench(kind, args.n, args.queries, index, threads=args.threads)
        if args.json:
            print(json.dumps(result), flush=True)
            continue
        print(f"{kind:5s} {result['index']:16s} n={result['n']:,} recall@10={result['recall_at_10']} "
              f"p50={result['p50_ms']} ms p99={result['p99_ms']} ms | exact p50={result['exact_p50_ms']} ms "
              f"-> x{result['speedup_vs_exact']} vs exact | build {result['build_s']} s, "
              f"{result['bytes_per_vector']} B/vector", flush=True)
        print("      " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
