"""``vidpipe`` entry point: argument parsing, dispatch, exit codes (see DESIGN.md section 2)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from vidpipe import __version__
from vidpipe.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, VidpipeError

COMMANDS: list[tuple[str, str]] = [
    ("ingest", "vidpipe.cli.ingest"),
    ("export", "vidpipe.cli.export"),
    ("report", "vidpipe.cli.report"),
    ("verify", "vidpipe.cli.verify"),
    ("search", "vidpipe.cli.search"),
    ("calibrate", "vidpipe.cli.calibrate"),
    ("faces", "vidpipe.cli.faces"),
    ("ui", "vidpipe.cli.ui"),
    ("user", "vidpipe.cli.user"),
    ("hashlist", "vidpipe.cli.hashlist"),
    ("bench", "vidpipe.cli.bench"),
    ("retention", "vidpipe.cli.retention"),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep the message on stderr
        self.print_usage(sys.stderr)
        print(f"vidpipe: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="vidpipe", description="Offline forensic media pipeline.")
    parser.add_argument("--version", action="version", version=f"vidpipe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for _name, module_name in COMMANDS:
        module = importlib.import_module(module_name)
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except VidpipeError as exc:
        print(f"vidpipe: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vidpipe: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
