"""The model stage: batched face detection, face embedding and scene embedding in one model thread
of the writer process.

Decoding happens in the sandboxed workers, which hand over an upright RGB copy of each image
(long side <= FACE_IMAGE_MAX_SIDE). Models run in a thread, so the writer keeps dispatching and
committing while torch (which releases the GIL) computes; batches span images, which is where
the speed comes from (facenet-pytorch's README loop runs one image and one face at a time).

The scene embedder runs after the detector because it needs the faces: the people in a photo are
masked out of its room vector (body boxes derived from the face boxes), so one detection serves
both. Each input says which outputs it still needs (a resumed run may lack only the scene).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from vidpipe.decode.model_input import FACE_IMAGE_MAX_SIDE, downscale

BATCH_IMAGES = 16            # images per detector+embedder round
BATCH_WAIT_S = 0.25          # how long a partial batch waits for more images


@dataclass
class FaceInput:
    """An upright image for the face stage and how it maps to the full-resolution image."""

    sha256: str
    pixels: np.ndarray         # RGB uint8 HxWx3
    scale: float               # pixels width / full-resolution upright width
    video_time_s: float | None = None
    want_faces: bool = True    # store faces (detection runs for scene masks either way)
    want_scene: bool = False   # store a masked scene vector


@dataclass
class FaceOutput:
    sha256: str
    video_time_s: float | None
    faces: list = field(default_factory=list)        # DetectedFace, full-resolution coordinates
    embeddings: np.ndarray | None = None
    error: str | None = None             # the detector (and so everything) failed
    want_faces: bool = True
    want_scene: bool = False
    scene: np.ndarray | None = None      # (dim,) float32, L2-normalised
    scene_masked: list = field(default_factory=list)   # body boxes left out, full-resolution pixels
    scene_error: str | None = None


def make_face_input(sha256: str, upright, video_time_s: float | None = None) -> FaceInput:
    """Downscale an upright PIL image for the face stage (never upscales; the recipe of
    `vidpipe.decode.model_input`, for an image already upright)."""
    scale = min(1.0, FACE_IMAGE_MAX_SIDE / max(upright.size))
    return FaceInput(sha256, np.asarray(downscale(upright, FACE_IMAGE_MAX_SIDE).convert("RGB"), dtype=np.uint8),
                     scale, video_time_s)


class FaceStage:
    """Owns the detector, the face embedder and the scene embedder (either may be None);
    ``submit`` inputs, collect ``results``."""

    def __init__(self, detector, embedder, batch_images: int = BATCH_IMAGES, scene_embedder=None,
                 threaded: bool = True) -> None:
        self.detector, self.embedder, self.scene_embedder = detector, embedder, scene_embedder
        self.batch_images = batch_images
        self._inbox: queue.Queue[FaceInput | None] = queue.Queue(maxsize=4 * batch_images)
        self._outbox: queue.Queue[FaceOutput] = queue.Queue()
        self._busy = 0
        self._lock = threading.Lock()
        # threaded=False: the caller already holds a batch (a Ray model actor) and calls run_batch.
        self._thread = threading.Thread(target=self._loop, name="face-stage", daemon=True) if threaded else None
        if self._thread is not None:
            self._thread.start()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._busy

    def submit(self, item: FaceInput) -> None:
        with self._lock:
            self._busy += 1
        self._inbox.put(item)

    def results(self) -> list[FaceOutput]:
        out = []
        while True:
            try:
                out.append(self._outbox.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        if self._thread is None:
            return
        self._inbox.put(None)
        self._thread.join(timeout=600)

    def run_batch(self, batch: list[FaceInput]) -> list[FaceOutput]:
        """Detect, embed and scene-embed ``batch`` now, in the caller's thread (one output per input, in order)."""
        return self._run(batch)

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + BATCH_WAIT_S
            while len(batch) < self.batch_images:
                try:
                    item = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            for output in self._run(batch):
                self._outbox.put(output)
            with self._lock:
                self._busy -= len(batch)

    def _run(self, batch: list[FaceInput]) -> list[FaceOutput]:
        try:
            images = [item.pixels for item in batch]
            detections = self.detector.detect_batch(images)
            embeddings = self._embed_faces(batch, images, detections)
        except Exception as exc:  # noqa: BLE001 - a failed batch fails its images, not the run
            if len(batch) > 1:  # isolate the image that broke the batch
                return [out for item in batch for out in self._run([item])]
            item = batch[0]
            return [FaceOutput(item.sha256, item.video_time_s, error=f"face_error:{type(exc).__name__}",
                               want_faces=item.want_faces, want_scene=item.want_scene)]
        outputs = []
        for item, faces, vectors in zip(batch, detections, embeddings):
            full = [_rescale(face, 1.0 / item.scale) for face in faces]
            outputs.append(FaceOutput(item.sha256, item.video_time_s, full, vectors,
                                      want_faces=item.want_faces, want_scene=item.want_scene))
        self._embed_scenes(batch, detections, outputs)
        return outputs

    def _embed_faces(self, batch: list[FaceInput], images: list, detections: list) -> list:
        """Face vectors for the inputs that want them; an empty array for the rest."""
        empty = np.zeros((0, getattr(self.embedder, "dim", 0) or 0), np.float32)
        wanted = [i for i, item in enumerate(batch) if item.want_faces and detections[i]]
        out: list = [empty] * len(batch)
        if wanted and self.embedder is not None:
            vectors = self.embedder.embed_batch([(images[i], detections[i]) for i in wanted])
            for i, v in zip(wanted, vectors):
                out[i] = v
        return out

    def _embed_scenes(self, batch: list[FaceInput], detections: list, outputs: list[FaceOutput]) -> None:
        """Masked room vectors; a failure costs the scene of those images, never their faces."""
        from vidpipe.extract.scenes.masking import body_boxes

        wanted = [i for i, item in enumerate(batch) if item.want_scene]
        if not wanted or self.scene_embedder is None:
            return
        masks = {i: body_boxes([f.box for f in detections[i]], batch[i].pixels.shape[1], batch[i].pixels.shape[0])
                 for i in wanted}
        try:
            vectors = self.scene_embedder.embed_batch([batch[i].pixels for i in wanted], [masks[i] for i in wanted])
        except Exception as exc:  # noqa: BLE001
            if len(wanted) > 1:  # isolate the image that broke the batch
                for i in wanted:
                    self._embed_scenes([batch[i]], [detections[i]], [outputs[i]])
                return
            outputs[wanted[0]].scene_error = f"scene_error:{type(exc).__name__}"
            return
        for i, vector in zip(wanted, vectors):
            factor = 1.0 / batch[i].scale
            outputs[i].scene = np.asarray(vector, np.float32)
            outputs[i].scene_masked = [[round(v * factor, 1) for v in box] for box in masks[i]]


def _rescale(face, factor: float):
    from dataclasses import replace

    if factor == 1.0:
        return face
    box = tuple(v * factor for v in face.box)
    landmarks = tuple((x * factor, y * factor) for x, y in face.landmarks) if face.landmarks else None
    return replace(face, box=box, landmarks=landmarks, size_px=face.size_px * factor)
