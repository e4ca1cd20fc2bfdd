"""Provenance of a run: tool version, git commit, library versions, host, config hash.

Every derived record points at a run; the run row holds what this module collects, so a
court can be told exactly which code and which libraries produced a number.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from vidpipe import __version__

# Distribution names whose versions change results; recorded in every run.
RECORDED_DISTRIBUTIONS = (
    "Pillow", "pillow-heif", "opencv-python", "numpy", "exifread", "ImageHash", "pdqhash",
    "faiss-cpu", "torch", "torchvision", "facenet-pytorch", "av", "scenedetect", "ray",
)


def distribution_version(name: str) -> str | None:
    """Installed version of a distribution, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of the source tree this package runs from, if it is a git checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def library_versions() -> dict[str, str | None]:
    """Versions of every library that can change a derived value."""
    versions = {name: distribution_version(name) for name in RECORDED_DISTRIBUTIONS}
    versions["python"] = platform.python_version()
    return versions


def config_hash(config: dict[str, Any]) -> str:
    """Stable SHA-256 of a JSON-serialisable configuration."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def run_environment() -> dict[str, Any]:
    """Everything about this process that belongs in a run's provenance."""
    return {
        "tool": "vidpipe",
        "tool_version": __version__,
        "git_commit": git_commit(),
        "libraries": library_versions(),
        "host": platform.node(),
        "platform": platform.platform(),
        "operator": os.environ.get("VIDPIPE_OPERATOR") or _login_name(),
        "argv": sys.argv,
    }


def _login_name() -> str:
    try:
        return os.getlogin()
    except OSError:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
