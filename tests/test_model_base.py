"""The model base class and the one loader of a case's models (vidpipe.models.base / .registry).

- every registered detector and embedder is an InferenceModel of its role (walks the registry);
- the lazy load runs once, even when many threads ask at the same moment;
- missing weights are a MissingDependencyError (exit 3) that names the file and what to do;
- model keys are the strings cases already hold (an old case's models table, verbatim), and equal
  what CaseWriter.register_model stores.
"""

from __future__ import annotations

import inspect
import threading
import time
from pathlib import Path

import pytest

from vidpipe.errors import EXIT_MISSING_DEPENDENCY, MissingDependencyError
from vidpipe.extract.faces.base import FaceDetector, FaceEmbedder
from vidpipe.extract.scenes.base import SceneEmbedder
from vidpipe.models import weights as W
from vidpipe.models.base import InferenceModel, model_key_of, require_weights_file
from vidpipe.models.registry import CaseModels, ModelConfig, load_case_models, model_classes

# The models table of a case ingested before the base class existed (demo_case, commit fb56f89,
# facenet-pytorch 2.6.0, the converted CASIA-WebFace file): search refuses a case whose keys it
# cannot reproduce, so these strings must never change.
OLD_CASE_KEYS = {
    "face_detector": "mtcnn-facenet-pytorch-2.6.0@ba987822301f215a",
    "face_embedder": "facenet-inceptionresnetv1-casia-webface-20180408-102900@64f8dc0b1b7c28ae",
    "scene_embedder": "efficientnet-lite0-imagenet@579344248a93e230",
}
ROLE_BASES = {"face_detector": FaceDetector, "face_embedder": FaceEmbedder, "scene_embedder": SceneEmbedder}


@pytest.fixture(scope="module")
def casia_weights() -> Path:
    path = W.converted_casia_path()
    if not path.is_file():
        pytest.skip("the converted CASIA-WebFace FaceNet file is not installed (make setup)")
    return path


@pytest.fixture(scope="module")
def case_models(casia_weights) -> CaseModels:
    return load_case_models(ModelConfig(weights=str(casia_weights)), "cpu")


# --------------------------------------------------------------------------- the registry
def test_every_registered_model_is_an_inference_model_of_its_role():
    classes = model_classes()
    assert set(classes) == set(ROLE_BASES)
    assert all(classes.values()), "each role has at least one plug-in"
    for role, by_name in classes.items():
        for name, cls in by_name.items():
            assert issubclass(cls, ROLE_BASES[role]) and issubclass(cls, InferenceModel), (role, name)
            assert cls.role == role and cls.name == name, (role, name)
            assert not inspect.isabstract(cls), f"{cls.__name__} leaves hooks unimplemented"
            for hook in ("_load", "_predict", "weights_info"):  # its own, not the base's abstract one
                assert getattr(cls, hook) is not getattr(InferenceModel, hook), (cls.__name__, hook)


# --------------------------------------------------------------------------- lazy, locked load
class _SlowModel(InferenceModel):
    name, role = "slow", "face_embedder"

    def __init__(self) -> None:
        super().__init__("cpu")
        self.loads = 0

    def _load(self):
        self.loads += 1
        time.sleep(0.05)  # long enough that every thread arrives while the first is still loading
        return object()

    def _predict(self, x):
        return self.load(), x

    def weights_info(self) -> dict:
        return {"model": "slow", "weights_sha256": "ab" * 32}


def _hammer(call, n: int = 16) -> list:
    barrier, out = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        barrier.wait()
        out[i] = call()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_lazy_load_runs_once_under_threads():
    model = _SlowModel()
    assert not model.loaded and model.loads == 0  # building is cheap: nothing loads
    results = _hammer(lambda: model.predict(1))
    assert model.loads == 1 and model.loaded
    assert len({id(net) for net, _ in results}) == 1


def test_a_real_plugin_loads_once_under_threads(monkeypatch, casia_weights):
    from vidpipe.extract.faces import facenet, get_embedder

    calls = []

    def slow_load(path, device="cpu"):
        calls.append(path)
        time.sleep(0.05)
        return object(), None

    monkeypatch.setattr(facenet, "load_facenet", slow_load)
    emb = get_embedder("facenet", weights=str(casia_weights))
    nets = _hammer(emb.load)
    assert len(calls) == 1 and len({id(n) for n in nets}) == 1


def test_a_failed_load_is_retried_not_cached():
    class Flaky(_SlowModel):
        def _load(self):
            self.loads += 1
            if self.loads == 1:
                raise MissingDependencyError("first try fails")
            return object()

    model = Flaky()
    with pytest.raises(MissingDependencyError):
        model.load()
    assert not model.loaded
    assert model.load() is not None and model.loads == 2


# --------------------------------------------------------------------------- missing weights: exit 3
def _exit3(excinfo) -> str:
    assert excinfo.value.exit_code == EXIT_MISSING_DEPENDENCY
    return str(excinfo.value)


def test_missing_face_weights_is_exit3_naming_the_file(tmp_path):
    absent = tmp_path / "nowhere" / "facenet.pt"
    with pytest.raises(MissingDependencyError) as e:
        load_case_models(ModelConfig(weights=str(absent), scene_embedder=None), "cpu")
    message = _exit3(e)
    assert str(absent) in message and "state_dict" in message


def test_missing_scene_weights_is_exit3_naming_the_file_and_where(tmp_path):
    from vidpipe.extract.scenes import effnet, get_scene_embedder

    absent = tmp_path / "absent.pth"
    with pytest.raises(MissingDependencyError) as e:
        get_scene_embedder(weights=str(absent))
    message = _exit3(e)
    assert str(absent) in message and effnet.WEIGHTS_FILENAME in message and effnet.PIP_COMMAND in message


def test_require_weights_file(tmp_path):
    present = tmp_path / "w.pt"
    present.write_bytes(b"x")
    assert require_weights_file(present, "X", "put it there") == present
    with pytest.raises(MissingDependencyError) as e:
        require_weights_file(tmp_path / "gone.pt", "X", "put it in /models")
    assert str(tmp_path / "gone.pt") in _exit3(e) and "put it in /models" in str(e.value)


# --------------------------------------------------------------------------- model keys
def test_keys_equal_the_strings_an_old_case_holds(case_models):
    assert {role: case_models.key(role) for role in OLD_CASE_KEYS} == OLD_CASE_KEYS
    for role, model in case_models.models().items():
        assert model.model_key == OLD_CASE_KEYS[role]
        assert model.role == role and model.device == "cpu"
        assert not model.loaded, "load_case_models builds and checks, the networks load on first use"


def test_detector_key_does_not_follow_the_installed_package_release(monkeypatch):
    from vidpipe.extract.faces import get_detector, mtcnn

    monkeypatch.setattr(mtcnn.metadata, "version", lambda name: "2.5.3")
    det = get_detector("mtcnn")
    assert det.model_key == OLD_CASE_KEYS["face_detector"]
    assert det.weights_info()["package"] == "facenet-pytorch-2.5.3"


def _writer_keys(case_dir: Path, infos: dict[str, dict]) -> dict[str, str]:
    from vidpipe.store.casedb import open_case
    from vidpipe.store.writer import CaseWriter

    _, conn = open_case(case_dir, create=True)
    try:
        writer = CaseWriter(conn)
        env = {"operator": "test", "argv": [], "tool_version": "0", "git_commit": None, "libraries": {}, "host": "h"}
        writer.begin_run("ingest", env, {}, "cfg")
        return {role: writer.register_model(role, info) for role, info in infos.items()}
    finally:
        conn.close()


def test_keys_equal_what_the_case_writer_stores(case_models, tmp_path):
    infos = {role: case_models.provenance(role) for role in case_models.models()}
    odd = {"nameless": {"weights_sha256": "cd" * 32}, "hashless": {"model": "m"}, "named": {"name": "n"}}
    stored = _writer_keys(tmp_path / "case", {**infos, **odd})
    assert {role: stored[role] for role in infos} == OLD_CASE_KEYS
    assert {role: model_key_of(info, role) for role, info in odd.items()} == {role: stored[role] for role in odd}


# --------------------------------------------------------------------------- load_case_models
def test_from_ingest_switches_models_off():
    class Ingest:
        face_detector, face_embedder, scene_embedder, face_weights = "mtcnn", "facenet", "effnet-lite0", None
        faces, scenes = False, True

    models = load_case_models(ModelConfig.from_ingest(Ingest()), "cpu")
    assert models.embedder is None and models.embedder_key is None
    assert set(models.models()) == {"face_detector", "scene_embedder"}
    assert models.provenance("scene_embedder")["device"] == "cpu"


def test_case_keys_pick_the_embedder_the_case_was_made_with(case_models):
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    from vidpipe.extract.faces import get_embedder

    dlib_key = get_embedder("dlib-resnet").model_key
    models = load_case_models(ModelConfig(scene_embedder=None, case_keys=[dlib_key]), "cpu")
    assert models.embedder.name == "dlib-resnet" and models.embedder_key == dlib_key
    # A case whose embedder is not installed here: the configured one loads (search then refuses it).
    other = load_case_models(ModelConfig(scene_embedder=None, case_keys=["gone@0000"]), "cpu")
    assert other.embedder.name == "facenet"

