"""The face stage on Ray actors: the :class:`~vidpipe.pipeline.face_stage.FaceStage` interface
(``submit`` / ``results`` / ``pending`` / ``close``) with the models in one or more Ray actors,
each holding a GPU (``num_gpus=1``) when the cluster has them.

Placement is the only difference: inside each actor the ordinary ``FaceStage`` runs the same
batched detector and embedder, on the device chosen by :mod:`vidpipe.models.device` on that
node, so results equal the local stage's within float tolerance. The driver batches inputs
(``BATCH_IMAGES`` or ``BATCH_WAIT_S``, like the local stage) and keeps at most two batches in
flight per actor. An actor that dies costs its batch (``face_error:worker_lost`` per image) and
is replaced.

Note: face inputs (upright RGB copies) travel worker -> driver -> actor. On one machine that is
shared memory; across nodes it puts every image's pixels through the driver's network link.
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


class _FaceWorker:
    """The Ray actor: loads the models once and runs batches through a local FaceStage."""

    def __init__(self, detector: str, embedder: str, weights: str | None, device: str | None) -> None:
        self.error: tuple[str, str] | None = None
        try:
            from vidpipe.extract.faces import get_detector, get_embedder
            from vidpipe.models.device import configure_cpu_threads, select_device
            from vidpipe.pipeline.face_stage import FaceStage

            self.device = select_device(device)
            if self.device == "cpu":
                configure_cpu_threads(int(os.environ.get("OMP_NUM_THREADS") or 0) or None)
            det = get_detector(detector, device=self.device)
            emb = get_embedder(embedder, device=self.device, weights=weights)
            self.info_ = {"detector": {**det.weights_info(), "device": self.device},
                          "embedder": {**emb.weights_info(), "device": self.device}}
            self.stage = FaceStage(det, emb)
        except VidpipeError as exc:  # missing weights: the driver re-raises it (exit 3)
            self.error = (type(exc).__name__, str(exc))

    def info(self) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        return self.info_

    def process(self, batch: list[FaceInput]) -> list[FaceOutput]:
        for item in batch:
            self.stage.submit(item)
        outputs: list[FaceOutput] = []
        while len(outputs) < len(batch):
            outputs.extend(self.stage.results())
            if len(outputs) < len(batch):
                time.sleep(0.005)
        return outputs


class RayFaceStage:
    """Face detection and embedding in Ray actors; same interface as ``FaceStage``.

    ``num_gpus`` per actor defaults to 1 when the cluster offers GPUs, else 0 (CPU actors).
    ``model_info()`` gives the detector's and embedder's provenance (with the actors' device)
    for ``CaseWriter.register_model``.
    """

    def __init__(self, detector: str, embedder: str, weights: str | None = None, device: str | None = None,
                 actors: int = 1, num_gpus: float | None = None, address: str | None = None, workers: int = 1,
                 batch_images: int = BATCH_IMAGES) -> None:
        self._ray = ray = import_ray()
        self._owns_ray = connect_ray(ray, address, workers)
        if num_gpus is None:
            num_gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self._args = (detector, embedder, weights, device)
        self._class = ray.remote(_FaceWorker).options(
            num_gpus=num_gpus, num_cpus=0 if num_gpus else 1, max_restarts=0, max_task_retries=0,
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
        self._in_flight: dict[Any, tuple[int, list[FaceInput]]] = {}  # ref -> (actor index, batch)
        self._pending = 0

    def model_info(self) -> dict[str, dict]:
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
                outputs = [FaceOutput(item.sha256, item.video_time_s, error="face_error:worker_lost")
                           for item in batch]
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
            self._in_flight[self._actors[i].process.remote(batch)] = (i, batch)
            load[i] += 1

    def _replace(self, i: int) -> None:
        try:
            self._ray.kill(self._actors[i], no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self._actors[i] = self._class.remote(*self._args)
