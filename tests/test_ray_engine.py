"""``--engine ray`` runs the same tasks as the local engine and yields the same case.

Ray runs on a private local instance (2 CPUs) started by each command; the heavy tests are
marked slow. Without the ``ray`` package they skip locally and fail under CI=true.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sandbox_targets as t
from conftest import REPO, conservation_holds, export_records, run_cli, run_json

from vidpipe.pipeline.sandbox import SandboxLimits, TaskFailure

FUNCTIONS = {"echo": t.echo, "hang": t.hang, "segfault": t.segfault, "hog": t.hog, "boom": t.boom}
EMBEDDING_ATOL = 1e-4   # face vectors are L2-normalised; batch composition moves them by ~1e-7
NUMBER_RTOL = 1e-6      # boxes and scores in the export
VOLATILE_KEYS = {"run_id", "elapsed_ms", "elapsed_s", "started_utc", "ended_utc"}
# A subfolder of the face set with many faces (67 in 16 photos), small enough for a test run.
FACE_SUBSETS = ("faces/dlib_detection",)


@pytest.fixture(scope="module")
def ray_installed() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        message = "ray is not installed (pip install ray, see requirements.lock)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def ingest(sources: list[Path], case: Path, engine: str, faces: bool) -> dict:
    args = ["ingest", *map(str, sources), "--case", str(case), "--workers", "2", "--no-scenes", "--json",
            "--engine", engine]
    return run_json(*args, *([] if faces else ["--no-faces"]))


def comparable(record: object) -> object:
    """An export record without the fields that name a run or a duration."""
    if isinstance(record, dict):
        return {k: comparable(v) for k, v in record.items() if k not in VOLATILE_KEYS}
    if isinstance(record, list):
        return [comparable(v) for v in record]
    return record


def assert_same(a: object, b: object, where: str = "") -> None:
    """Equal structure and values; floats within NUMBER_RTOL (faces come from batched models)."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float), where
        assert math.isclose(a, b, rel_tol=NUMBER_RTOL, abs_tol=1e-6), f"{where}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_exports(local_case: Path, ray_case: Path) -> list[dict]:
    local = {r["sha256"]: comparable(r) for r in export_records(local_case)}
    ray = {r["sha256"]: comparable(r) for r in export_records(ray_case)}
    assert local.keys() == ray.keys()
    for sha256 in local:
        assert_same(local[sha256], ray[sha256], sha256[:12])
    return list(local.values())


def face_vectors(case: Path) -> dict[tuple, np.ndarray]:
    with sqlite3.connect(f"file:{case / 'case.sqlite'}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT sha256, frame_key, face_index, embedding FROM faces").fetchall()
    return {(s, f, i): np.frombuffer(e, dtype="<f4") for s, f, i, e in rows}


def run_config(case: Path) -> list[dict]:
    with sqlite3.connect(f"file:{case / 'case.sqlite'}?mode=ro", uri=True) as conn:
        return [json.loads(c) for (c,) in conn.execute("SELECT config FROM runs ORDER BY started_utc")]


@pytest.fixture(scope="module")
def exif_cases(eval_data: Path, ray_installed: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The EXIF set ingested once per engine (faces off), shared by the tests below."""
    root = tmp_path_factory.mktemp("ray-exif")
    sources = [eval_data / "exif"]
    local = ingest(sources, root / "local", "local", faces=False)
    ray = ingest(sources, root / "ray", "ray", faces=False)
    return {"sources": sources, "root": root, "local": (root / "local", local), "ray": (root / "ray", ray)}


@pytest.mark.slow
def test_ray_and_local_give_the_same_exif_export(exif_cases: dict) -> None:
    (local_case, local), (ray_case, ray) = exif_cases["local"], exif_cases["ray"]
    assert ray["status"] == "completed" and conservation_holds(ray)
    for key in ("discovered", "ok", "partial", "failed", "skipped", "images"):
        assert ray[key] == local[key], key
    records = assert_same_exports(local_case, ray_case)
    assert sum(1 for r in records if r.get("exif")) >= 50  # the comparison covered real EXIF
    configs = run_config(ray_case)
    assert configs[-1]["engine"] == "ray" and "ray_address" not in configs[-1] and "workers" not in configs[-1]


@pytest.mark.slow
def test_ray_and_local_give_the_same_faces(eval_data: Path, ray_installed: None, tmp_path: Path) -> None:
    sources = [eval_data / sub for sub in FACE_SUBSETS]
    local = ingest(sources, tmp_path / "local", "local", faces=True)
    ray = ingest(sources, tmp_path / "ray", "ray", faces=True)
    assert local["faces"] >= 20 and ray["faces"] == local["faces"]
    assert_same_exports(tmp_path / "local", tmp_path / "ray")
    local_vectors, ray_vectors = face_vectors(tmp_path / "local"), face_vectors(tmp_path / "ray")
    assert local_vectors.keys() == ray_vectors.keys() and len(local_vectors) == local["faces"]
    worst = max(float(np.abs(local_vectors[k] - ray_vectors[k]).max()) for k in local_vectors)
    assert worst <= EMBEDDING_ATOL, worst
    with sqlite3.connect(f"file:{tmp_path / 'ray' / 'case.sqlite'}?mode=ro", uri=True) as conn:
        devices = {json.loads(info).get("device") for (info,) in conn.execute("SELECT info FROM models")}
    assert devices == {"cpu"}  # the device is stated in the run's model records


def _committed(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05) as conn:
            return int(conn.execute("SELECT COUNT(status) FROM item_status").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not created yet, or busy


@pytest.mark.slow
def test_a_killed_ray_run_resumes_to_the_same_export(exif_cases: dict) -> None:
    case = exif_cases["root"] / "killed"
    local_case, local = exif_cases["local"]
    cmd = [sys.executable, "-m", "vidpipe", "ingest", *map(str, exif_cases["sources"]), "--case", str(case),
           "--workers", "2", "--no-scenes", "--no-faces", "--json", "--engine", "ray"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while _committed(case / "case.sqlite") < 5:  # Ray is up and results are landing: kill mid-run
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no results committed in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = _committed(case / "case.sqlite")
    assert done_at_kill < local["discovered"], "the kill landed after the work was done"
    final = ingest(exif_cases["sources"], case, "ray", faces=False)
    assert final["status"] == "completed" and conservation_holds(final)
    assert_same_exports(local_case, case)
    with sqlite3.connect(f"file:{case / 'case.sqlite'}?mode=ro", uri=True) as conn:
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    assert statuses.get("running", 0) == 0 and statuses.get("aborted", 0) >= 1  # the killed run is marked


@pytest.fixture(scope="module")
def ray_session(ray_installed: None):
    """One local Ray instance (2 CPUs) for the in-process tests; pools and stages reuse it."""
    from vidpipe.pipeline.ray_pool import connect_ray, import_ray

    ray = import_ray()
    started = connect_ray(ray, None, 2)
    yield ray
    if started:
        ray.shutdown()


@pytest.mark.slow
def test_ray_pool_failures_cost_one_result_each(ray_session) -> None:
    from vidpipe.pipeline.ray_pool import RayPool

    limits = SandboxLimits(memory_bytes=256 * 1024**2, base_timeout_s=30)
    results = {}
    with RayPool(FUNCTIONS, workers=2, limits=limits) as pool:
        pool.submit("hang", "hang", 60, timeout_s=1.5)
        pool.submit("segv", "segfault", None)
        pool.submit("hog", "hog", 2048)
        pool.submit("boom", "boom", None)
        for i in range(6):
            pool.submit(("ok", i), "echo", i)
        deadline = time.monotonic() + 180
        while pool.pending and time.monotonic() < deadline:
            for key, result in pool.results():
                results[key] = result
        # An actor that dies under a task (node lost, Ray's memory monitor) costs that task only.
        pool.submit("lost", "hang", 60, timeout_s=120)
        pool.submit("after", "echo", 42)
        victim = None
        while victim is None and time.monotonic() < deadline:
            for key, result in pool.results(max_wait_s=0.1):
                results[key] = result
            busy = [s for s in pool._slots if s.job is not None and s.job[0] == "lost"]
            if busy:
                victim = busy[0].where["pid"]
        os.kill(victim, signal.SIGKILL)
        while pool.pending and time.monotonic() < deadline:
            for key, result in pool.results():
                results[key] = result
    assert results["hang"] == TaskFailure("timeout")
    assert results["segv"] == TaskFailure("crash_signal:11")
    assert results["hog"] == TaskFailure("memory_limit")
    assert isinstance(results["boom"], TaskFailure) and results["boom"].reason == "worker_error:ValueError"
    assert [results[("ok", i)] for i in range(6)] == list(range(6))
    assert isinstance(results["lost"], TaskFailure) and results["lost"].reason == "worker_lost"
    assert results["after"] == 42


def test_engine_ray_without_ray_exits_3(tmp_path: Path, sample_media: Path) -> None:
    shadow = tmp_path / "shadow" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('ray is not installed (simulated)')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}
    proc = run_cli("ingest", str(sample_media), "--case", str(tmp_path / "case"), "--engine", "ray", "--json",
                   check=False, env=env)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "pip install ray" in proc.stderr
    assert not (tmp_path / "case").exists()  # nothing was started or written


def test_ray_address_needs_engine_ray(tmp_path: Path, sample_media: Path) -> None:
    proc = run_cli("ingest", str(sample_media), "--case", str(tmp_path / "case"), "--ray-address", "auto",
                   check=False)
    assert proc.returncode == 2 and "--engine ray" in proc.stderr


def _face_inputs(folder: Path) -> list:
    from PIL import Image, ImageOps

    from vidpipe.pipeline.face_stage import make_face_input

    inputs = []
    for path in sorted(folder.glob("*.jpg"))[:4]:
        with Image.open(path) as img:
            inputs.append(make_face_input(path.name, ImageOps.exif_transpose(img).convert("RGB")))
    return inputs


def _collect(stage, n: int, timeout_s: float = 300) -> dict:
    out, deadline = {}, time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        for output in stage.results():
            out[output.sha256] = output
        time.sleep(0.05)
    return out


@pytest.mark.slow
def test_ray_face_stage_matches_the_local_stage(eval_data: Path, ray_session) -> None:
    """The model stage placed in a Ray actor (num_gpus=1 on a GPU cluster; 0 here) gives the same faces."""
    from vidpipe.extract.faces import get_detector, get_embedder
    from vidpipe.pipeline.face_stage import FaceStage
    from vidpipe.pipeline.ray_face_stage import RayFaceStage

    inputs = _face_inputs(eval_data / "faces" / "dlib_detection")
    assert len(inputs) >= 4
    local = FaceStage(get_detector("mtcnn", device="cpu"), get_embedder("facenet", device="cpu"))
    remote = RayFaceStage("mtcnn", "facenet", device="cpu", num_gpus=0)
    try:
        for item in inputs:
            local.submit(item)
            remote.submit(item)
        expected, got = _collect(local, len(inputs)), _collect(remote, len(inputs))
        assert remote.pending == 0
        info = remote.model_info()
    finally:
        local.close()
        remote.close()
    assert info["detector"]["device"] == "cpu" and info["embedder"]["device"] == "cpu"
    assert expected.keys() == got.keys() == {i.sha256 for i in inputs}
    assert sum(len(o.faces) for o in expected.values()) >= 4
    for name, want in expected.items():
        have = got[name]
        assert want.error is None and have.error is None
        assert len(want.faces) == len(have.faces), name
        for a, b in zip(want.faces, have.faces):
            assert np.allclose(a.box, b.box, atol=1e-3), name
        if want.faces:
            assert np.abs(want.embeddings - have.embeddings).max() <= EMBEDDING_ATOL, name
