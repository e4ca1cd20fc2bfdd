"""Scene (room) embedding plug-ins, registered by name, plus geometric verification.

    from vidpipe.extract.scenes import get_scene_embedder
    from vidpipe.extract.scenes.masking import body_boxes
    emb = get_scene_embedder()                        # MissingDependencyError (exit 3) if weights missing
    masks = [body_boxes(face_boxes, w, h) for ...]   # hide the people, not the room
    vectors = emb.embed_batch(images, masks)          # (n, dim) float32, L2-normalised

Re-ranking: `vidpipe.extract.scenes.geometry.verify_pair` + `combine`. Plug-ins are listed as
"module:Class" so that importing this package does not import torch.
"""

from __future__ import annotations

import importlib

from vidpipe.extract.scenes.base import SceneEmbedder, expand_query

DEFAULT_SCENE_EMBEDDER = "effnet-lite0"

_EMBEDDERS: dict[str, str] = {
    "effnet-lite0": "vidpipe.extract.scenes.effnet:EffNetLite0SceneEmbedder",
}


def register_scene_embedder(name: str, target: str) -> None:
    """Add a scene embedder plug-in as "module:Class" (extensions call this at import)."""
    _EMBEDDERS[name] = target


def scene_embedder_names() -> list[str]:
    """Registered scene embedder names."""
    return sorted(_EMBEDDERS)


def scene_embedder_class(name: str) -> type[SceneEmbedder]:
    """The class of a registered scene embedder (imports its module, not its weights)."""
    try:
        target = _EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown scene embedder {name!r}; choose from {', '.join(sorted(_EMBEDDERS))}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def get_scene_embedder(name: str = DEFAULT_SCENE_EMBEDDER, device: str = "cpu", weights: str | None = None,
                       **options) -> SceneEmbedder:
    """A scene embedder by registered name; raises MissingDependencyError now if its weights are missing."""
    return scene_embedder_class(name)(device=device, weights=weights, **options)


__all__ = ["DEFAULT_SCENE_EMBEDDER", "SceneEmbedder", "expand_query", "get_scene_embedder",
           "register_scene_embedder", "scene_embedder_class", "scene_embedder_names"]
