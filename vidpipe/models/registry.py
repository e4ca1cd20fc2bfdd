"""The one place that loads a case's models, for ingest, search, the UI and the Ray face stage.

    from vidpipe.models.registry import ModelConfig, load_case_models
    models = load_case_models(ModelConfig.from_ingest(config), config.device)   # ingest
    models = load_case_models(ModelConfig(scene_embedder=None, case_keys=keys))  # face search
    writer.register_model("face_embedder", models.provenance("face_embedder"))   # == models.embedder_key

Every model is found and its weights checked here, before any evidence is decoded: a missing
file is a MissingDependencyError (exit 3) that names it. The networks themselves load on first
use (`InferenceModel.load`). Keys are the strings cases already hold (`vidpipe.models.base`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from vidpipe.errors import MissingDependencyError
from vidpipe.extract import faces, scenes
from vidpipe.extract.faces.base import FaceDetector, FaceEmbedder
from vidpipe.extract.scenes.base import SceneEmbedder
from vidpipe.models.base import InferenceModel, model_key_of
from vidpipe.models.device import select_device


@dataclass(frozen=True)
class ModelConfig:
    """Which models a case uses: registry names, and the embedder keys the case already holds.

    ``embedder=None`` turns faces off, ``scene_embedder=None`` turns scenes off (the detector always
    loads: its boxes also mask people out of room vectors). ``case_keys``: when given, the installed
    face embedder whose key (or model name) the case holds is chosen over ``embedder``, so search
    embeds queries with the model the case's faces were made with.
    """

    detector: str = faces.DEFAULT_DETECTOR
    embedder: str | None = faces.DEFAULT_EMBEDDER
    weights: str | None = None
    scene_embedder: str | None = scenes.DEFAULT_SCENE_EMBEDDER
    case_keys: Collection[str] = field(default_factory=tuple)

    @classmethod
    def from_ingest(cls, config: Any) -> ModelConfig:
        """The models an ``IngestConfig`` asks for (its faces/scenes switches decide which load)."""
        return cls(detector=config.face_detector,
                   embedder=config.face_embedder if config.faces else None,
                   weights=config.face_weights,
                   scene_embedder=config.scene_embedder if config.scenes else None)


@dataclass(frozen=True)
class CaseModels:
    """A case's loaded models, the device they run on and their provenance records (with keys)."""

    device: str
    detector: FaceDetector
    embedder: FaceEmbedder | None
    scene_embedder: SceneEmbedder | None
    infos: Mapping[str, dict]  # role -> weights_info() + device, as CaseWriter.register_model stores it

    def provenance(self, role: str) -> dict:
        """The record to store for a role ("face_detector", "face_embedder", "scene_embedder")."""
        return dict(self.infos[role])

    def key(self, role: str) -> str | None:
        """The model key the case stores for a role, or None when that model is off."""
        return model_key_of(self.infos[role], role) if role in self.infos else None

    @property
    def detector_key(self) -> str:
        return model_key_of(self.infos["face_detector"], "face_detector")

    @property
    def embedder_key(self) -> str | None:
        return self.key("face_embedder")

    @property
    def scene_key(self) -> str | None:
        return self.key("scene_embedder")

    def models(self) -> dict[str, InferenceModel]:
        """role -> model, for the models that are on."""
        out: dict[str, InferenceModel] = {"face_detector": self.detector}
        if self.embedder is not None:
            out["face_embedder"] = self.embedder
        if self.scene_embedder is not None:
            out["scene_embedder"] = self.scene_embedder
        return out


def _case_embedder(config: ModelConfig, device: str) -> FaceEmbedder | None:
    """The installed embedder whose key or model name the case holds (configured one first), if any."""
    wanted = {k.rpartition("@")[0] for k in config.case_keys}
    first = config.embedder or faces.DEFAULT_EMBEDDER
    for name in [first, *(n for n in faces.embedder_names() if n != first)]:
        try:
            candidate = faces.get_embedder(name, device=device, weights=config.weights if name == first else None)
        except (MissingDependencyError, ValueError):
            continue  # not installed here: try the next one
        info = candidate.weights_info()  # hashes the weights file (cached per file)
        if model_key_of(info, "face_embedder") in config.case_keys or info.get("model") in wanted:
            return candidate
    return None


def load_case_models(config: ModelConfig | None = None, device: str | None = None) -> CaseModels:
    """Build (not yet load) the case's detector and embedders on ``device`` (None: `select_device`).

    MissingDependencyError (exit 3) names the missing file or package; ValueError for an unknown name.
    """
    config = config or ModelConfig()
    device = select_device(device)
    detector = faces.get_detector(config.detector, device=device)
    embedder = scene_embedder = None
    if config.embedder is not None:
        embedder = _case_embedder(config, device) if config.case_keys else None
        if embedder is None:  # checks the weights file first: fail before any decoding
            embedder = faces.get_embedder(config.embedder, device=device, weights=config.weights)
    if config.scene_embedder is not None:
        scene_embedder = scenes.get_scene_embedder(config.scene_embedder, device=device)
    on = {"face_detector": detector, "face_embedder": embedder, "scene_embedder": scene_embedder}
    infos = {role: model.provenance() for role, model in on.items() if model is not None}
    return CaseModels(device, detector, embedder, scene_embedder, infos)


def model_classes() -> dict[str, dict[str, type]]:
    """Every registered plug-in class by role and name (imports each plug-in's module)."""
    return {"face_detector": {n: faces.detector_class(n) for n in faces.detector_names()},
            "face_embedder": {n: faces.embedder_class(n) for n in faces.embedder_names()},
            "scene_embedder": {n: scenes.scene_embedder_class(n) for n in scenes.scene_embedder_names()}}
