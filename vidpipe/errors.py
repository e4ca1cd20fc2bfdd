"""Exit codes of the command-line contract and the exceptions that map onto them.

The CLI is the only place that turns these into process exit codes; library code raises.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_MISSING_DEPENDENCY = 3
EXIT_INTERRUPTED = 130


class VidpipeError(Exception):
    """Base class for errors the CLI reports as a one-line message (exit 1)."""

    exit_code = EXIT_ERROR


class UsageError(VidpipeError):
    """The command line or its arguments are wrong (exit 2)."""

    exit_code = EXIT_USAGE


class MissingDependencyError(VidpipeError):
    """A package or model-weights file is missing; the message says what to put where (exit 3)."""

    exit_code = EXIT_MISSING_DEPENDENCY


class CaseError(VidpipeError):
    """The case folder or its database cannot be used as it is: a file where the folder should be,
    a symlink, permissions other users can read, or a damaged case.sqlite (exit 1)."""


class DamagedCaseError(CaseError):
    """case.sqlite is empty, not SQLite, or truncated (exit 1; `vidpipe verify` reports it as ok: false)."""


class CaseLockedError(VidpipeError):
    """Another vidpipe process holds the case's write lock."""


class Interrupted(VidpipeError):
    """The run was stopped by SIGINT/SIGTERM after finishing its current batch (exit 130)."""

    exit_code = EXIT_INTERRUPTED
