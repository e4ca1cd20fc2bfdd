"""``--engine ray`` on a cluster with GPUs runs the model stage (faces AND scenes) in GPU actors,
fed by ObjectRefs, and stores what the local engine stores (issue #14).

No GPU here: the module's Ray instance offers a custom resource and the stage is told that this
resource is the accelerator (``ray_face_stage.ACCELERATOR``), so selection, placement and the
object-store hand-off run as they would on GPUs, with the models on the CPU. One Ray instance
serves the module (starting Ray is the slow part).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

FAKE_GPU = "vidpipe_test_gpu"
COSINE_MIN = 0.999
# A small slice of sample_media with a face (astronaut), rooms (scenes) and a short video (keyframes).
SOURCES = ("photos/astronaut.jpg", "rooms/room_a_1.jpg", "video/clip_small.mp4")


@pytest.fixture(scope="module")
def ray_gpu_session():
    try:
        from vidpipe.pipeline.ray_pool import import_ray
    except ImportError:  # pragma: no cover
        pytest.skip("vidpipe.pipeline.ray_pool unavailable")
    try:
        ray = import_ray()
    except Exception as exc:  # noqa: BLE001 - ray not installed
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    import logging

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, resources={FAKE_GPU: 1}, log_to_driver=False, logging_level=logging.WARNING,
                 include_dashboard=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evidence")
    repo = Path(__file__).resolve().parents[1]
    for rel in SOURCES:
        shutil.copy(repo / "sample_media" / rel, root / Path(rel).name)
    return root


def _ingest(evidence: Path, case: Path, engine: str) -> dict:
    from vidpipe.pipeline.runner import IngestConfig, run_ingest

    config = IngestConfig(sources=[str(evidence)], workers=2, engine=engine, device="cpu", retry_failed=False)
    return run_ingest(case, config, progress=False)


def _vectors(case: Path, table: str) -> dict[tuple, np.ndarray]:
    key = "sha256, frame_key, face_index" if table == "faces" else "sha256, frame_key"
    with sqlite3.connect(f"file:{case / 'case.sqlite'}?mode=ro", uri=True) as conn:
        rows = conn.execute(f"SELECT {key}, embedding FROM {table}").fetchall()  # noqa: S608 - fixed names
    return {tuple(r[:-1]): np.frombuffer(r[-1], dtype="<f4") for r in rows}


def _devices(case: Path) -> dict[str, str]:
    import json

    with sqlite3.connect(f"file:{case / 'case.sqlite'}?mode=ro", uri=True) as conn:
        return {role: json.loads(info)["device"] for role, info in conn.execute("SELECT role, info FROM models")}


@pytest.fixture(scope="module")
def local_case(evidence: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = tmp_path_factory.mktemp("local") / "case"
    summary = _ingest(evidence, case, "local")
    assert summary["status"] == "completed"
    return case


def _assert_same_vectors(want: dict, have: dict, what: str) -> None:
    assert want.keys() == have.keys(), what
    for key, a in want.items():
        b = have[key]
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        assert cosine > COSINE_MIN, f"{what} {key}: cosine {cosine}"


def test_engine_ray_with_gpus_runs_faces_and_scenes_in_gpu_actors(ray_gpu_session, local_case: Path, evidence: Path,
                                                                   tmp_path: Path, monkeypatch) -> None:
    from vidpipe.pipeline import ray_face_stage
    from vidpipe.pipeline.ray_face_stage import RayModelStage

    monkeypatch.setattr(ray_face_stage, "ACCELERATOR", FAKE_GPU)  # this cluster's "GPU"
    submitted: list = []
    real_call = RayModelStage._call

    def spy(actor, batch_ref):
        submitted.append(batch_ref)
        return real_call(actor, batch_ref)

    monkeypatch.setattr(RayModelStage, "_call", staticmethod(spy))
    summary = _ingest(evidence, tmp_path / "case", "ray")
    assert summary["status"] == "completed"

    # The runner picked the model stage; every batch went to it as a reference into the object store,
    # and inside it every image too: the decode actors put the pixels there, not the driver.
    assert submitted, "the runner did not use the Ray model stage"
    assert all(isinstance(ref, ray_gpu_session.ObjectRef) for ref in submitted)
    items = [item for batch in ray_gpu_session.get(submitted) for item in batch]
    assert items and all(isinstance(item.pixels, ray_gpu_session.ObjectRef) for item in items)
    # (their owners, the decode actors, ended with the run's pool: the vectors below show the model
    # actors read them)
    assert _devices(tmp_path / "case") == {"face_detector": "cpu", "face_embedder": "cpu", "scene_embedder": "cpu"}

    # Same faces and scene vectors as the local engine (images and video keyframes).
    local_faces, ray_faces = _vectors(local_case, "faces"), _vectors(tmp_path / "case", "faces")
    local_scenes, ray_scenes = _vectors(local_case, "scenes"), _vectors(tmp_path / "case", "scenes")
    assert len(local_faces) >= 1 and len(local_scenes) >= len(SOURCES)  # the video adds keyframe scenes
    _assert_same_vectors(local_faces, ray_faces, "face")
    _assert_same_vectors(local_scenes, ray_scenes, "scene")
    assert sum(1 for k in ray_scenes if k[1]) >= 1  # keyframes of the video went through the actors too


def test_engine_ray_without_gpus_keeps_the_models_in_the_driver(ray_gpu_session) -> None:
    from vidpipe.pipeline.ray_face_stage import cluster_accelerators
    from vidpipe.pipeline.runner import IngestConfig, _open_ray_model_stage

    assert cluster_accelerators(ray_gpu_session) == 0  # the real check: this cluster has no "GPU"
    config = IngestConfig(sources=["/nonexistent"], engine="ray", device="cpu")
    assert _open_ray_model_stage(None, config) is None  # type: ignore[arg-type] - no model is registered
    assert ray_gpu_session.is_initialized()  # a connection it did not make is left open


def test_pixels_go_to_the_store_wherever_a_result_carries_them() -> None:
    from vidpipe.pipeline.face_stage import FaceInput
    from vidpipe.pipeline.ray_pool import pixels_to_store
    from vidpipe.pipeline.tasks import ContentResult, HashResult
    from vidpipe.sources.archive import MemberEntry

    def item() -> FaceInput:
        return FaceInput("ab" * 32, np.zeros((2, 2, 3), np.uint8), 1.0)

    def put(pixels: np.ndarray) -> tuple:
        return ("ref", pixels.shape)

    inner = HashResult(2, True, content=ContentResult("cd" * 32, "ok", face_inputs=[item()]))
    member = MemberEntry(b"a.jpg", 3, 2, None, hashed=inner)
    archive = ContentResult("ef" * 32, "ok", face_inputs=[item(), item()], members=[member])
    hashed = HashResult(1, True, content=archive)
    assert pixels_to_store(hashed, put) == 3
    assert all(i.pixels == ("ref", (2, 2, 3)) for i in archive.face_inputs + member.hashed.content.face_inputs)
    single = item()
    assert pixels_to_store(single, put) == 1 and single.pixels == ("ref", (2, 2, 3))
    assert pixels_to_store(ContentResult("ab" * 32, "failed"), put) == 0


def test_a_lost_image_costs_that_image_only(ray_gpu_session, monkeypatch) -> None:
    from vidpipe.pipeline.face_stage import FaceInput
    from vidpipe.pipeline.ray_face_stage import _fetch_pixels

    ray = ray_gpu_session
    pixels = np.full((256, 256, 3), 7, np.uint8)
    kept, gone = ray.put(pixels), ray.put(pixels.copy())
    real_get = ray.get

    class Lost(ray.exceptions.RayError):
        """What Ray raises for an object whose owner (the decode actor) was replaced (OwnerDiedError)."""

    def get(refs, **kw):
        if (refs if isinstance(refs, list) else [refs]).count(gone):
            raise Lost()
        return real_get(refs, **kw)

    monkeypatch.setattr(ray, "get", get)
    batch = [FaceInput("a", kept, 1.0), FaceInput("b", gone, 1.0), FaceInput("c", pixels, 1.0)]
    assert _fetch_pixels(batch) == {1}
    assert np.array_equal(batch[0].pixels, pixels) and batch[2].pixels is pixels
    assert batch[1].pixels is gone  # left as it was; the actor answers face_error:pixels_lost for it
