"""``vidpipe ingest SOURCE... --case DIR``"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vidpipe.cli.output import emit_json, info
from vidpipe.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from vidpipe.extract.faces import DEFAULT_EMBEDDER, embedder_names
    p = sub.add_parser("ingest", help="ingest evidence folders/archives into a case (read-only, resumable)")
    p.add_argument("sources", nargs="+", help="evidence folders, files or archives")
    p.add_argument("--case", required=True, type=Path, help="case directory (created if missing)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="worker processes (default: CPUs)")
    p.add_argument("--no-faces", action="store_true", help="skip face detection and embeddings")
    p.add_argument("--no-scenes", action="store_true", help="skip scene embeddings")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="execution engine: local processes (default) or Ray (local instance or a cluster)")
    p.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="with --engine ray: join this running Ray cluster (e.g. the head's 10.0.0.1:6379, or "
                        "'auto'); default: start a private local Ray instance with --workers CPUs")
    p.add_argument("--face-embedder", choices=embedder_names(), default=DEFAULT_EMBEDDER,
                   help=f"face embedder plug-in (default {DEFAULT_EMBEDDER}; dlib-resnet: dlib's 128-d ResNet)")
    p.add_argument("--places", type=Path, metavar="CSV",
                   help="label reference photos with the place they show (columns: path or sha256, place, ...)")
    p.add_argument("--max-pixels", type=int, default=200_000_000, help="pixel budget per image")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per file task (grows with size)")
    p.add_argument("--worker-memory-mb", type=int, default=2048, help="address-space cap per worker")
    p.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vidpipe.pipeline.engines import check_engine
    from vidpipe.pipeline.runner import IngestConfig, run_ingest

    if args.ray_address and args.engine != "ray":
        raise UsageError("--ray-address needs --engine ray")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    for source in args.sources:
        if not os.path.lexists(source):
            raise UsageError(f"evidence source does not exist: {source}")
    check_engine(args.engine)  # a missing ray package is exit 3 before the case is touched
    config = IngestConfig(sources=[os.path.abspath(s) for s in args.sources], workers=args.workers,
                          faces=not args.no_faces, scenes=not args.no_scenes, engine=args.engine,
                          ray_address=args.ray_address,
                          max_pixels=args.max_pixels, task_timeout_s=args.timeout,
                          worker_memory_mb=args.worker_memory_mb,
                          places=str(args.places.resolve()) if args.places else None,
                          face_embedder=args.face_embedder)
    summary = run_ingest(args.case, config, progress=not args.no_progress and not args.json)
    if args.json:
        emit_json(summary)
    else:
        _print_human(summary)
    return 0


def _print_human(s: dict) -> None:
    info(f"run {s['run_id']}: {s['status']} in {s['elapsed_s']} s")
    info(f"  discovered {s['discovered']}: ok {s['ok']}, partial {s['partial']}, "
         f"failed {sum(s['failed'].values())}, skipped {sum(s['skipped'].values())}")
    for label, reasons in (("failed", s["failed"]), ("skipped", s["skipped"]), ("partial", s["partial_reasons"])):
        for reason, n in reasons.items():
            info(f"    {label:8s} {reason}: {n}")
    info(f"  images {s['images']}, videos {s['videos']}, archives {s['archives']}, faces {s['faces']}")
