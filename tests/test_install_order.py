"""`vidpipe ingest` checks its models before it creates the case: an exit 3 leaves nothing behind.

Missing weights are simulated the way a user meets them: $VIDPIPE_FACENET_WEIGHTS naming a file that
does not exist (an explicit choice is never a fallback, so the lookup fails at once, without the
first-use conversion).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vidpipe.cli.main import main
from vidpipe.models import weights as W

PHOTOS = Path(__file__).resolve().parent.parent / "sample_media" / "photos"


@pytest.fixture
def no_facenet_weights(monkeypatch, tmp_path) -> Path:
    missing = tmp_path / "nowhere" / "facenet.pt"
    monkeypatch.setenv(W.ENV_FACENET_WEIGHTS, str(missing))
    return missing


def test_missing_weights_exit3_creates_no_case(no_facenet_weights, tmp_path, capsys):
    case = tmp_path / "cases" / "new-case"
    rc = main(["ingest", str(PHOTOS), "--case", str(case), "--no-progress", "--workers", "1"])
    assert rc == 3
    err = capsys.readouterr().err
    assert "FaceNet weights not found" in err and str(no_facenet_weights) in err
    assert not case.exists()  # neither the folder nor case.sqlite / .write.lock inside it
    assert not (tmp_path / "cases").exists()


def test_missing_weights_exit3_leaves_an_existing_case_untouched(no_facenet_weights, tmp_path):
    case = tmp_path / "case"
    case.mkdir()
    (case / "notes.txt").write_text("examiner's file")
    assert main(["ingest", str(PHOTOS), "--case", str(case), "--no-progress", "--workers", "1"]) == 3
    assert sorted(p.name for p in case.iterdir()) == ["notes.txt"]


def test_no_models_needed_with_faces_and_scenes_off(no_facenet_weights, tmp_path, capsys):
    """The check asks only for the models the run uses: hashes alone need no weights."""
    case = tmp_path / "case"
    rc = main(["ingest", str(PHOTOS), "--case", str(case), "--no-faces", "--no-scenes", "--no-progress",
               "--workers", "1", "--json"])
    assert rc == 0, capsys.readouterr().err
    assert (case / "case.sqlite").is_file()
