"""Shared fixtures: the evaluation data, a CLI runner, small generated media."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _eval_data_root() -> Path:
    env = os.environ.get("VIDPIPE_EVAL_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def eval_data() -> Path:
    """../shared/data (or $VIDPIPE_EVAL_DATA). Skips locally when absent; fails under CI=true."""
    root = _eval_data_root()
    if not (root / "README.md").exists():
        message = f"evaluation data not found at {root} (set VIDPIPE_EVAL_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


def run_cli(*args: str, check: bool = True, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m vidpipe ARGS`` and return the completed process (text mode)."""
    proc = subprocess.run([sys.executable, "-m", "vidpipe", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"vidpipe {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-4000:]}")
    return proc


def run_json(*args: str, **kw) -> dict:
    """Run a ``--json`` command and parse the one object it must print on stdout."""
    proc = run_cli(*args, **kw)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one JSON line on stdout, got {len(lines)}: {proc.stdout[:500]}"
    return json.loads(lines[0])


def export_records(case: Path) -> list[dict]:
    proc = run_cli("export", "--case", str(case), "--format", "jsonl")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def conservation_holds(summary: dict) -> bool:
    return summary["discovered"] == (summary["ok"] + summary["partial"] + sum(summary["failed"].values())
                                     + sum(summary["skipped"].values()))


@pytest.fixture
def db(case):
    """A connection to the test module's ``case`` (rows as ``sqlite3.Row``)."""
    import sqlite3

    conn = sqlite3.connect(case / "case.sqlite")
    conn.row_factory = sqlite3.Row
    yield conn
    conn.close()


@pytest.fixture
def clock(monkeypatch):
    """Move the UI session module's clock forward: ``clock.advance(seconds)``."""
    import time

    from ui import session

    class Clock:
        offset = 0.0

        def advance(self, seconds: float) -> None:
            self.offset += seconds

    c = Clock()
    monkeypatch.setattr(session, "clock", lambda: time.time() + c.offset)
    return c


@pytest.fixture
def sample_media() -> Path:
    return REPO / "sample_media"
