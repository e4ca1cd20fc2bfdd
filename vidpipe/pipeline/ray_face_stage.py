"""The model stage on Ray actors: the :class:`~vidpipe.pipeline.face_stage.FaceStage` interface
(``submit`` / ``results`` / ``pending`` / ``close``) with face detection, face embedding AND the
scene embedder in one actor type, one actor per GPU of the cluster.

The runner picks it with ``--engine ray`` when the cluster offers GPUs
(:func:`cluster_accelerators`); otherwise the model stage stays in the driver (the local
``FaceStage``), as on a CPU-only cluster the models gain nothing from moving.

Placement is the only difference: inside each actor the ordinary ``FaceStage`` runs the same
batched detector and embedders, loaded by :func:`vidpipe.models.registry.load_case_models` on the
device chosen on that node, so results equal the local stage's within float tolerance. The
driver batches inputs (``BATCH_IMAGES`` or ``BATCH_WAIT_S``, like the local stage), puts each
batch into Ray's object store once (``ray.put``) and hands the actor the ObjectRef: the pixels are
serialised once, read by the actor from the store (zero-copy on its node), and an actor that has
to be replaced gets the same reference again rather than a second copy. At most two batches are
in flight per actor. An actor that dies costs its batch (``face_error:worker_lost`` per image) and
is replaced.

With the Ray pool, the decode actors put the images they decode for the model stage into their
own node's object store and send the driver only the references (``ray_pool.pixels_to_store``),
so across nodes the pixels go from the decoding node to the GPU node, never through the driver.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Any

from vidpipe.errors import VidpipeError
from vidpipe.pipeline.face_stage import BATCH_IMAGES, BATCH_WAIT_S, FaceInput, FaceOutput
from vidpipe.pipeline.ray_pool import code_roots, connect_ray, import_ray

BATCHES_IN_FLIGHT = 2  # per actor: one computing, one arriving
# The Ray resource a model actor holds, one unit each. Tests switch it to a custom resource name
# so the GPU path (selection, placement, object refs) runs on a CPU-only machine.
ACCELERATOR = "GPU"
ROLES = ("face_detector", "face_embedder", "scene_embedder")


def cluster_accelerators(ray: Any) -> float:
    """How many accelerators (GPUs) the connected Ray cluster offers."""
    return float(ray.cluster_resources().get(ACCELERATOR, 0) or 0)


def _placement(accelerators: float) -> dict[str, Any]:
    """Ray actor options that give each model actor ``accelerators`` units (0: a CPU actor)."""
    if not accelerators:
        return {"num_cpus": 1}
    if ACCELERATOR == "GPU":
        return {"num_gpus": accelerators, "num_cpus": 0}
    return {"resources": {ACCELERATOR: accelerators}, "num_cpus": 0}


class _ModelWorker:
    """The Ray actor: loads the case's models once and runs batches through a local FaceStage."""

    def __init__(self, models: Any, device: str | None, batch_images: int) -> None:
        self.error: tuple[str, str] | None = None
        try:
            from vidpipe.models.device import configure_cpu_threads, select_device
            from vidpipe.models.registry import load_case_models
            from vidpipe.pipeline.face_stage import FaceStage

            self.device = select_device(device)
            if self.device == "cpu":
                configure_cpu_threads(int(os.environ.get("OMP_NUM_THREADS") or 0) or None)
            loaded = load_case_models(models, self.device)
            self.info_ = {role: loaded.provenance(role) for role in ROLES if role in loaded.infos}
            self.stage = FaceStage(loaded.detector, loaded.embedder, batch_images=batch_images,
                                   scene_embedder=loaded.scene_embedder, threaded=False)
        except VidpipeError as exc:  # missing weights: the driver re-raises it (exit 3)
            self.error = (type(exc).__name__, str(exc))

    def info(self) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        return self.info_

    def process(self, batch: list[FaceInput]) -> list[FaceOutput]:
        # Ray has already resolved the batch's ObjectRef (a top-level argument); pixels that a decode
        # worker put into its node's store are fetched here, straight from that node.
        lost = _fetch_pixels(batch)
        kept = [item for i, item in enumerate(batch) if i not in lost]
        outputs = iter(self.stage.run_batch(kept) if kept else [])
        return [FaceOutput(item.sha256, item.video_time_s, error="face_error:pixels_lost", want_faces=item.want_faces,
                           want_scene=item.want_scene) if i in lost else next(outputs)
                for i, item in enumerate(batch)]


def _fetch_pixels(batch: list[FaceInput]) -> set[int]:
    """Replace ObjectRef pixels by the arrays; the indexes whose pixels are gone (their owner, a
    decode actor, was replaced before the model stage read them)."""
    import numpy as np
    import ray

    refs = {i: item.pixels for i, item in enumerate(batch) if not isinstance(item.pixels, np.ndarray)}
    if not refs:
        return set()
    try:
        values = dict(zip(refs, ray.get(list(refs.values()))))
    except ray.exceptions.RayError:  # one is lost: find which, keep the rest
        values = {}
        for i, ref in refs.items():
            try:
                values[i] = ray.get(ref)
            except ray.exceptions.RayError:
                pass
    for i, pixels in values.items():
        batch[i].pixels = pixels
    return set(refs) - set(values)


class RayModelStage:
    """Face detection, face embedding and scene embedding in Ray actors; same interface as ``FaceStage``.

    Inputs may carry their pixels as ObjectRefs (``reads_object_refs``: the Ray pool's decode
    actors put them into their node's store, ``ray_pool.pixels_to_store``); the model actor fetches them.

    ``models`` is a :class:`vidpipe.models.registry.ModelConfig` (which models are on).
    ``accelerators`` per actor defaults to 1 when the cluster offers them, else 0 (CPU actors).
    ``model_info()`` gives each role's provenance (with the actors' device) for
    ``CaseWriter.register_model``. ``owns_ray``: the caller connected Ray for this stage, so
    ``close`` shuts it down.
    """

    def __init__(self, models: Any, device: str | None = None, actors: int = 1, accelerators: float | None = None,
                 address: str | None = None, workers: int = 1, batch_images: int = BATCH_IMAGES,
                 owns_ray: bool = False, insecure: bool = False) -> None:
        self._ray = ray = import_ray()
        self._owns_ray = connect_ray(ray, address, workers, insecure) or owns_ray
        if accelerators is None:
            accelerators = 1 if cluster_accelerators(ray) >= 1 else 0
        self._args = (models, device, batch_images)
        self._class = ray.remote(_ModelWorker).options(
            **_placement(accelerators), max_restarts=0, max_task_retries=0,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(code_roots({}))}})
        self.batch_images = batch_images
        self._actors = [self._class.remote(*self._args) for _ in range(max(1, actors))]
        infos = ray.get([a.info.remote() for a in self._actors])
        for info in infos:
            if "error" in info:
                self.close()
                from vidpipe import errors

                raise getattr(errors, info["error"][0], VidpipeError)(info["error"][1])
        self._info = infos[0]
        self._buffer: list[FaceInput] = []
        self._first_at = 0.0
        self._batches: deque[list[FaceInput]] = deque()
        self._in_flight: dict[Any, tuple[int, list[FaceInput]]] = {}  # result ref -> (actor index, batch)
        self._pending = 0

    reads_object_refs = True

    def model_info(self) -> dict[str, dict]:
        """role -> provenance record, for the roles that are on."""
        return self._info

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, item: FaceInput) -> None:
        if not self._buffer:
            self._first_at = time.monotonic()
        self._buffer.append(item)
        self._pending += 1
        if len(self._buffer) >= self.batch_images:
            self._batches.append(self._buffer)
            self._buffer = []
        self._dispatch()

    def results(self) -> list[FaceOutput]:
        if self._buffer and time.monotonic() - self._first_at >= BATCH_WAIT_S:
            self._batches.append(self._buffer)
            self._buffer = []
        self._dispatch()
        if not self._in_flight:
            return []
        ready, _ = self._ray.wait(list(self._in_flight), num_returns=len(self._in_flight), timeout=0)
        out: list[FaceOutput] = []
        for ref in ready:
            i, batch = self._in_flight.pop(ref)
            try:
                outputs = self._ray.get(ref)
            except self._ray.exceptions.RayError:
                self._replace(i)
                outputs = [FaceOutput(item.sha256, item.video_time_s, error="face_error:worker_lost",
                                      want_faces=item.want_faces, want_scene=item.want_scene) for item in batch]
            self._pending -= len(batch)
            out.extend(outputs)
        self._dispatch()
        return out

    def close(self) -> None:
        for actor in self._actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._actors = []
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False

    def _dispatch(self) -> None:
        load = [0] * len(self._actors)
        for i, _ in self._in_flight.values():
            load[i] += 1
        while self._batches:
            i = min(range(len(load)), key=load.__getitem__)
            if load[i] >= BATCHES_IN_FLIGHT:
                return
            batch = self._batches.popleft()
            # One copy into the object store; the actor reads it there (by reference, not by value).
            self._in_flight[self._call(self._actors[i], self._ray.put(batch))] = (i, batch)
            load[i] += 1

    @staticmethod
    def _call(actor: Any, batch_ref: Any) -> Any:
        """Start one batch on an actor; returns the result's ObjectRef."""
        return actor.process.remote(batch_ref)

    def _replace(self, i: int) -> None:
        try:
            self._ray.kill(self._actors[i], no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self._actors[i] = self._class.remote(*self._args)


class RayFaceStage(RayModelStage):
    """Faces only (no scene embedder), by model names: the stage's earlier signature."""

    def __init__(self, detector: str, embedder: str, weights: str | None = None, device: str | None = None,
                 actors: int = 1, num_gpus: float | None = None, address: str | None = None, workers: int = 1,
                 batch_images: int = BATCH_IMAGES) -> None:
        from vidpipe.models.registry import ModelConfig

        super().__init__(ModelConfig(detector=detector, embedder=embedder, weights=weights, scene_embedder=None),
                         device, actors, num_gpus, address, workers, batch_images)

    def model_info(self) -> dict[str, dict]:
        """Also under the earlier names "detector" and "embedder"."""
        info = super().model_info()
        return {**info, "detector": info["face_detector"], "embedder": info["face_embedder"]}
