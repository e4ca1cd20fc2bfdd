"""``vidpipe ingest SOURCE... --case DIR``"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from vidpipe.cli.output import emit_json, info
from vidpipe.errors import UsageError
from vidpipe.pipeline.limits import (
    MAX_TIMEOUT_S,
    MAX_WORKER_MEMORY_MB,
    MAX_WORKERS,
    MIN_TIMEOUT_S,
    MIN_WORKER_MEMORY_MB,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from vidpipe.extract.faces import DEFAULT_EMBEDDER, embedder_names
    p = sub.add_parser("ingest", help="ingest evidence folders/archives into a case (read-only, resumable)")
    p.add_argument("sources", nargs="+", help="evidence folders, files or archives")
    p.add_argument("--case", required=True, type=Path, help="case directory (created if missing)")
    p.add_argument("--workers", type=_bounded(int, 1, MAX_WORKERS), default=os.cpu_count() or 2,
                   help="worker processes (default: CPUs)")
    p.add_argument("--no-faces", action="store_true", help="skip face detection and embeddings")
    p.add_argument("--no-scenes", action="store_true", help="skip scene embeddings")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="execution engine: local processes (default) or Ray (local instance or a cluster)")
    p.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="with --engine ray: join this running Ray cluster (e.g. the head's 10.0.0.1:6379, or "
                        "'auto'); default: start a private local Ray instance with --workers CPUs")
    p.add_argument("--ray-insecure", action="store_true",
                   help="with --ray-address: join a cluster without Ray token authentication (RAY_AUTH_MODE="
                        "token and a token are required otherwise; see docs/ray_cluster.md)")
    p.add_argument("--face-embedder", choices=embedder_names(), default=DEFAULT_EMBEDDER,
                   help=f"face embedder plug-in (default {DEFAULT_EMBEDDER}; dlib-resnet: dlib's 128-d ResNet)")
    p.add_argument("--places", type=Path, metavar="CSV",
                   help="label reference photos with the place they show (columns: path or sha256, place, ...)")
    p.add_argument("--max-pixels", type=_bounded(int, 1, None), default=200_000_000, help="pixel budget per image")
    p.add_argument("--timeout", type=_bounded(float, MIN_TIMEOUT_S, MAX_TIMEOUT_S), default=60.0,
                   help="seconds per file task (grows with size; a video's budget grows with its duration "
                        "and resolution, see vidpipe/video/budget.py)")
    p.add_argument("--worker-memory-mb", type=_bounded(int, MIN_WORKER_MEMORY_MB, MAX_WORKER_MEMORY_MB),
                   default=2048, help="address-space cap per worker")
    p.add_argument("--retry-failed", action=argparse.BooleanOptionalAction, default=True,
                   help="retry, once per configuration, what earlier runs left failed on a time, memory or "
                        "crash limit (and videos left partial on their time budget), with 4x time and 2x "
                        "memory (default: on)")
    p.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def _bounded(kind: type, low: float, high: float | None):
    """An argparse type: a finite ``kind`` within [low, high]; anything else is a usage error (exit 2)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a{'n integer' if kind is int else ' number'}: {text!r}") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds} (got {text})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def run(args: argparse.Namespace) -> int:
    from vidpipe.pipeline.engines import check_engine
    from vidpipe.pipeline.runner import IngestConfig, run_ingest
    from vidpipe.search.build import refresh_indexes

    if args.ray_address and args.engine != "ray":
        raise UsageError("--ray-address needs --engine ray")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    for source in args.sources:
        if not os.path.lexists(source):
            raise UsageError(f"evidence source does not exist: {source}")
    check_engine(args.engine)  # a missing ray package is exit 3 before the case is touched
    if args.ray_insecure and not args.ray_address:
        raise UsageError("--ray-insecure needs --ray-address")
    if args.ray_address:  # a cluster without token authentication runs anyone's code beside the evidence
        from vidpipe.pipeline.ray_pool import check_ray_auth

        check_ray_auth(args.ray_address, args.ray_insecure)
    given = [os.path.abspath(s) for s in args.sources]
    # A root reached through a link ("/link", "/link/", a link to a file) is walked at its target;
    # links inside it stay "skipped: symlink". Both paths are recorded (sources.given_root).
    resolved = [os.path.realpath(s) for s in args.sources]
    config = IngestConfig(sources=resolved, given_sources=given, workers=args.workers,
                          faces=not args.no_faces, scenes=not args.no_scenes, engine=args.engine,
                          ray_address=args.ray_address, ray_insecure=args.ray_insecure,
                          max_pixels=args.max_pixels, task_timeout_s=args.timeout,
                          worker_memory_mb=args.worker_memory_mb,
                          places=str(args.places.resolve()) if args.places else None,
                          face_embedder=args.face_embedder, retry_failed=args.retry_failed)
    _check_models(config)  # before run_ingest creates the case: a missing model leaves no case behind
    summary = run_ingest(args.case, config, progress=not args.no_progress and not args.json,
                         refresh_indexes=refresh_indexes)
    summary["sources"] = [{"path": _readable(r), "given": _readable(g)} for r, g in zip(resolved, given)]
    if args.json:
        emit_json(summary)
    else:
        _print_human(summary)
    return 0


def _check_models(config) -> None:
    """Build the run's models once (no network load) so missing weights or packages end in exit 3
    (MissingDependencyError) before the case directory and case.sqlite exist.

    The runner builds them again inside the case (cheap: weight hashes are cached per process); a
    first-use FaceNet conversion happens here, once. Nothing to check with faces and scenes off.
    """
    if not (config.faces or config.scenes):
        return
    # torch reads this when it loads, and building the models imports it: same default as the runner's.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from vidpipe.models.registry import ModelConfig, load_case_models

    load_case_models(ModelConfig.from_ingest(config), config.device)


def _readable(path: str) -> str:
    """A path for output: bytes that are not UTF-8 as ``\\xNN`` (as item locators show them)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _print_human(s: dict) -> None:
    info(f"run {s['run_id']}: {s['status']} in {s['elapsed_s']} s")
    for source in s.get("sources", []):
        if source["given"] != source["path"]:
            info(f"  source {source['given']} resolved to {source['path']}")
    info(f"  discovered {s['discovered']}: ok {s['ok']}, partial {s['partial']}, "
         f"failed {sum(s['failed'].values())}, skipped {sum(s['skipped'].values())}")
    for label, reasons in (("failed", s["failed"]), ("skipped", s["skipped"]), ("partial", s["partial_reasons"])):
        for reason, n in reasons.items():
            info(f"    {label:8s} {reason}: {n}")
    info(f"  images {s['images']}, videos {s['videos']}, archives {s['archives']}, faces {s['faces']}")
