"""Shared fixtures: the evaluation data, a CLI runner, small generated media."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Loggers of our own packages. A record at ERROR or above from them during a test means something
# went wrong that the test did not look at (PySceneDetect's conftest does the same).
OWN_LOGGERS = ("vidpipe", "indexer", "ui")
ALLOW_ERROR_LOGS = "allow_error_logs"


class _Collect(logging.Handler):
    """Keeps every record it is handed (level filtering is the handler's ``level``)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_error_logs(request: pytest.FixtureRequest):
    """Fail the test if vidpipe/indexer/ui log at ERROR or above while it runs (in this process).

    Tests that feed hostile input on purpose and expect such a record opt out with
    ``@pytest.mark.allow_error_logs(reason=...)``. Records from worker subprocesses are not seen here.
    """
    if request.node.get_closest_marker(ALLOW_ERROR_LOGS) is not None:
        yield
        return
    handler = _Collect()
    loggers = [logging.getLogger(name) for name in OWN_LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    if handler.records:
        lines = "\n".join(f"  {r.name} {r.levelname}: {r.getMessage()}" for r in handler.records[:20])
        pytest.fail(f"{len(handler.records)} ERROR log record(s) during the test (mark it "
                    f"@pytest.mark.{ALLOW_ERROR_LOGS}(reason=...) if they are expected):\n{lines}", pytrace=False)


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


@pytest.fixture(scope="session")
def sample_case_template(tmp_path_factory) -> tuple[Path, dict]:
    """``sample_media`` ingested once per session with every default stage (faces, scenes), 2 workers:
    (case folder, ingest summary). Several modules searched their own identical ingest of it; one
    ingest, copied with ``copy_case``, serves them all. Never write to the template itself."""
    case = tmp_path_factory.mktemp("sample-case") / "case"
    summary = run_json("ingest", str(REPO / "sample_media"), "--case", str(case), "--workers", "2", "--json")
    return case, summary


def copy_case(template: Path, dest: Path) -> Path:
    """A private copy of a closed case folder (database, indexes, thumbnails; modes kept) at ``dest``."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def chromium_port(tmp_path_factory):
    """One headless Chromium for every browser test of the session: its DevTools port. Each test opens
    its own browser context (test_ui_e2e.new_context_page), so none sees another's cookies."""
    # The browser helpers live with the browser tests.
    from test_ui_e2e import _start_chromium, require_chromium

    require_chromium()
    browser, port = _start_chromium(tmp_path_factory.mktemp("chromium") / "profile")
    yield port
    browser.terminate()
    try:
        browser.wait(timeout=20)
    except subprocess.TimeoutExpired:
        browser.kill()
        browser.wait()


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
