"""The autouse ``no_error_logs`` fixture (tests/conftest.py): a test fails when vidpipe, indexer or
ui log at ERROR or above during it, unless it carries ``@pytest.mark.allow_error_logs``.

It runs a small generated suite with the real conftest in a child pytest and reads the outcome of
each test from its JUnit XML."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SUITE = '''
import logging
import threading

import pytest


def test_error_from_vidpipe():
    logging.getLogger("vidpipe.pipeline.runner").error("decoder crashed")


def test_critical_from_ui():
    logging.getLogger("ui.app").critical("lost the case")


def test_error_from_indexer_in_a_thread():
    t = threading.Thread(target=lambda: logging.getLogger("indexer.store").error("bad shard"))
    t.start()
    t.join()


def test_exception_log_from_vidpipe():
    try:
        raise ValueError("x")
    except ValueError:
        logging.getLogger("vidpipe").exception("unexpected")


@pytest.mark.allow_error_logs(reason="feeds a corrupt file on purpose")
def test_marked_error_is_allowed():
    logging.getLogger("vidpipe.extract.exif").error("corrupt EXIF")


def test_warning_is_fine():
    logging.getLogger("vidpipe.video").warning("short read")


def test_other_packages_errors_are_not_ours():
    logging.getLogger("PIL.Image").error("not ours")
    logging.getLogger("vidpipevendor").error("a prefix is not a child")
'''

EXPECTED = {
    "test_error_from_vidpipe": "error", "test_critical_from_ui": "error",
    "test_error_from_indexer_in_a_thread": "error", "test_exception_log_from_vidpipe": "error",
    "test_marked_error_is_allowed": "passed", "test_warning_is_fine": "passed",
    "test_other_packages_errors_are_not_ours": "passed",
}


def _outcomes(report: Path) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = {child.tag for child in case} & {"failure", "error", "skipped"}
        # A failure in fixture teardown is reported as an error of the test itself.
        outcomes[case.get("name")] = "error" if kinds & {"failure", "error"} else ("skipped" if kinds else "passed")
    return outcomes


def test_error_logs_fail_a_test_unless_it_opts_out(tmp_path: Path) -> None:
    root = tmp_path / "suite"
    (root / "tests").mkdir(parents=True)
    shutil.copy(TESTS / "conftest.py", root / "tests" / "conftest.py")
    (root / "tests" / "test_generated.py").write_text(SUITE)
    (root / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\nmarkers =\n"
                                     "  allow_error_logs(reason): expected ERROR records\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests",
                           f"--junitxml={tmp_path / 'report.xml'}"], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert _outcomes(tmp_path / "report.xml") == EXPECTED, proc.stdout[-3000:]
    assert "decoder crashed" in proc.stdout and "allow_error_logs" in proc.stdout

