"""One base class for every detector and embedder: lazy, thread-safe load; provenance; the model key.

Shaped like immich's ``InferenceModel``: building a model is cheap (it only finds and checks its
weights files, so a missing file stops a run at start-up with exit 3), the network loads on the
first ``load()`` or ``predict()`` under a lock (the face stage, a Ray actor and the UI's server
threads may share one instance), and subclasses write two hooks:

- ``_load()`` builds the network(s) and returns them (called once, under the lock);
- ``_predict(*inputs)`` runs them; ``self.load()`` returns what ``_load()`` built.

``model_key`` is the string a case stores for the model (``models.model_key``, and in every
``faces``/``scenes`` row): ``<model name>@<first 16 hex of the weights SHA-256>``. The model name
carries the release (``mtcnn-facenet-pytorch-2.6.0``, ``...-20180408-102900``), so name + hash is
name + weights + version. Old cases hold exactly these strings and search refuses a case whose
key it cannot match, so the format never changes.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from vidpipe.errors import MissingDependencyError

ROLES = ("face_detector", "face_embedder", "scene_embedder")


def model_key_of(info: Mapping[str, Any], role: str) -> str:
    """The key ``CaseWriter.register_model`` stores: name@first 16 hex of the weights SHA-256.

    ``info`` is a ``weights_info()`` record; ``role`` names the model when the record has no name.
    """
    name = info.get("model") or info.get("name") or role
    return f"{name}@{(info.get('weights_sha256') or 'unknown')[:16]}"


def require_weights_file(path: str | Path, what: str, remedy: str) -> Path:
    """``path`` if it is a file, else MissingDependencyError (exit 3) naming it and what to do.

    ``what`` names the model ("FaceNet", "EfficientNet-Lite0"); ``remedy`` says where the file
    should be or which command puts it there.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingDependencyError(f"{what} weights file not found: {p}; {remedy}")
    return p


class InferenceModel(ABC):
    """A detector or embedder whose network loads once, lazily, behind a lock.

    Class attributes: ``name`` (registry name), ``role`` (one of ROLES) and ``version`` (changes
    whenever outputs change for the same weights). Instances carry ``device``.
    """

    name: ClassVar[str]
    role: ClassVar[str]
    version: ClassVar[str] = "1"

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._loaded: Any = None
        self._load_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the network is in memory."""
        return self._loaded is not None

    def load(self) -> Any:
        """The network(s) built by ``_load()``, built on the first call only, even under threads."""
        model = self._loaded
        if model is None:  # double-checked: the lock is taken only until the first load finished
            with self._load_lock:
                if self._loaded is None:
                    self._loaded = self._load()
                model = self._loaded
        return model

    def predict(self, *inputs: Any, **options: Any) -> Any:
        """Load if needed, then run ``_predict``."""
        self.load()
        return self._predict(*inputs, **options)

    @abstractmethod
    def _load(self) -> Any:
        """Build and return the network(s); MissingDependencyError when a file cannot be read."""

    @abstractmethod
    def _predict(self, *inputs: Any, **options: Any) -> Any:
        """Run the loaded network(s) (``self.load()``) on the inputs."""

    @abstractmethod
    def weights_info(self) -> dict:
        """Provenance: {"model": ..., "weights_sha256": ..., "licence": ...} (and more where known)."""

    @property
    def model_key(self) -> str:
        """The key a case stores for this model (see the module docstring); hashes are cached per file."""
        return model_key_of(self.weights_info(), self.role)

    def provenance(self) -> dict:
        """``weights_info()`` plus the device: the record ``CaseWriter.register_model`` stores."""
        return {**self.weights_info(), "device": self.device}
