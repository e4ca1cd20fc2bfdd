"""``vidpipe`` entry point: argument parsing, dispatch, exit codes (see DESIGN.md section 2)."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import traceback
from collections.abc import Callable, Sequence

from vidpipe import __version__
from vidpipe.cli.output import emit_json
from vidpipe.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, VidpipeError
from vidpipe.store.case_guard import private_umask

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
    ("audit", "vidpipe.cli.audit"),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep the message on stderr
        self.print_usage(sys.stderr)
        print(f"vidpipe: error: {message}", file=sys.stderr)
        exc = SystemExit(EXIT_USAGE)
        exc.message = message  # type: ignore[attr-defined]  # for the --json error object
        raise exc


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
    argv = list(sys.argv[1:] if argv is None else argv)
    want_json = "--json" in argv
    private_umask()  # every file this command (and its workers) writes is private to the user
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if want_json and exc.code == EXIT_USAGE:
            emit_json({"error": getattr(exc, "message", "usage error"), "code": EXIT_USAGE})
        raise
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    handler: Callable[[argparse.Namespace], int] = args.handler
    want_json = bool(getattr(args, "json", False))
    try:
        return handler(args)
    except BrokenPipeError:
        return EXIT_ERROR
    except BaseException as exc:  # noqa: BLE001 - the one place every failure becomes a message + exit code
        if isinstance(exc, SystemExit):
            raise
        message, code = describe_error(exc)
        if args.verbose and code == EXIT_ERROR and not isinstance(exc, VidpipeError):
            traceback.print_exception(exc)
        print(f"vidpipe: {message}", file=sys.stderr)
        if want_json:
            emit_json({"error": message, "code": code})
        return code


def describe_error(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for an exception that reached the command line."""
    if isinstance(exc, VidpipeError):
        message, code = str(exc), exc.exit_code
    elif isinstance(exc, KeyboardInterrupt):
        message, code = "interrupted", EXIT_INTERRUPTED
    elif isinstance(exc, sqlite3.DatabaseError):
        message, code = _database_message(exc), EXIT_ERROR
    elif isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        message, code = f"{exc.strerror or exc}{where}", EXIT_ERROR
    elif isinstance(exc, MemoryError):
        message, code = "out of memory", EXIT_ERROR
    else:
        message, code = f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)", EXIT_ERROR
    return " ".join(message.split()), code  # one line, whatever the exception held


def _database_message(exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if any(s in text for s in ("malformed", "not a database", "disk I/O error", "corrupt")):
        return (f"the case database is damaged ({text}): restore case.sqlite from a backup; "
                "`vidpipe verify --case DIR` lists what it can")
    if "readonly" in text or "unable to open" in text:
        return f"cannot write to the case database ({text}): check that the case folder and its files are writable"
    return f"case database error: {text}"


if __name__ == "__main__":
    raise SystemExit(main())
