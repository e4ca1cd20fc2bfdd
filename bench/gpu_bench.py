"""``make bench-gpu``: images/s and faces/s of the face stage on a CUDA machine, per stage and end to end,
beside the naive facenet-pytorch loop and plain batching measured in the same run.

    python -m bench.gpu_bench [--images DIR ...] [--n 1024] [--weights FILE] [--decode-procs 16]

Without CUDA it prints why and exits 0 (``--device cpu --n 16`` runs the same code on the CPU, to
check the script itself). What is timed, on the same in-memory corpus of encoded JPEG/PNG bytes
(the files found under the ``--images`` folders, repeated to ``--n`` images):

- ``naive``: facenet-pytorch as its README shows it: ``MTCNN(keep_all=True)`` then
  ``InceptionResnetV1`` on each image in turn (the baseline).
- ``batched``: vidpipe's detector and embedder (``MTCNNDetector``, ``FaceNetEmbedder``) with their
  default batching, decoding in the same process (plain batching).
- ``decode``: decoding alone in ``--decode-procs`` processes (the ceiling set by the CPUs).
- ``pipeline``: decoding in those processes feeding batched detection and embedding; detection
  copies padded onto one canvas so every batch is one forward pass (``--canvas``).
- ``ray models``: the ingest's Ray model stage (``RayModelStage``: detection, face embedding and
  the scene embedder in one actor per GPU) on a private local Ray instance, fed face inputs
  decoded in those processes; each batch goes through Ray's object store by reference. Needs the
  ``ray`` package (the row is left out without it, or with ``--ray-batch`` and no sizes).

Each row prints images/s, faces/s and the ratio to ``naive``; stage times come from the same runs.
Results are also written to ``bench_out/gpu_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def load_corpus(folders: list[Path], n: int) -> list[bytes]:
    """Encoded bytes of every image under ``folders``, repeated in a fixed order to ``n`` items."""
    files = sorted(p for f in folders if f.exists() for p in f.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no images under {', '.join(map(str, folders))}")
    blobs = [p.read_bytes() for p in files]
    return [blobs[i % len(blobs)] for i in range(n)]


def decode(data: bytes) -> np.ndarray:
    """RGB uint8 pixels of one encoded image (OpenCV, as a decode worker would)."""
    import cv2

    cv2.setNumThreads(1)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_naive(corpus: list[bytes], device: str, weights: str) -> dict:
    """facenet-pytorch's own loop: detect, align and embed one image at a time."""
    import torch
    from facenet_pytorch import MTCNN
    from PIL import Image

    from vidpipe.extract.faces.facenet import load_facenet

    mtcnn = MTCNN(keep_all=True, device=device)
    resnet, _ = load_facenet(weights, device)
    faces = 0
    for data in corpus[:2]:  # warm-up
        mtcnn(Image.fromarray(decode(data)))
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for data in corpus:
            crops = mtcnn(Image.fromarray(decode(data)))
            if crops is not None:
                resnet(crops.to(device))
                faces += len(crops)
    sync(device)
    return {"images": len(corpus), "faces": faces, "seconds": time.perf_counter() - start}


def make_models(device: str, weights: str, canvas: int | None, det_batch: int, emb_batch: int):
    """vidpipe's detector and embedder; with ``canvas``, detection copies share one padded size."""
    from vidpipe.extract.faces.base import downscale_copy
    from vidpipe.extract.faces.facenet import FaceNetEmbedder
    from vidpipe.extract.faces.mtcnn import MTCNNDetector

    class CanvasDetector(MTCNNDetector):
        """Pads each detection copy (top-left, so coordinates stay) onto a canvas x canvas frame."""

        def _downscale(self, image):
            small, sx, sy = downscale_copy(image, canvas)
            frame = np.zeros((canvas, canvas, 3), np.uint8)
            frame[:small.shape[0], :small.shape[1]] = small
            return frame, sx, sy

    if canvas:
        detector = CanvasDetector(device=device, max_side=canvas, batch_size=det_batch)
    else:
        detector = MTCNNDetector(device=device)
    embedder = FaceNetEmbedder(device=device, weights=weights, batch_size=emb_batch)
    return detector, embedder


def run_models(images: list[np.ndarray], detector, embedder, batch: int, device: str, timing: dict) -> int:
    """Detect and embed ``images`` in batches of ``batch``; return the faces found."""
    faces = 0
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        t0 = time.perf_counter()
        found = detector.detect_batch(chunk)
        sync(device)
        t1 = time.perf_counter()
        embedder.embed_batch(list(zip(chunk, found)))
        sync(device)
        timing["detect_s"] += t1 - t0
        timing["embed_s"] += time.perf_counter() - t1
        faces += sum(len(f) for f in found)
    return faces


def run_batched(corpus: list[bytes], device: str, weights: str) -> dict:
    """Plain batching: decode in this process, then vidpipe's batched detector and embedder."""
    detector, embedder = make_models(device, weights, None, 8, 32)
    run_models([decode(d) for d in corpus[:8]], detector, embedder, 8, device, {"detect_s": 0.0, "embed_s": 0.0})
    timing = {"detect_s": 0.0, "embed_s": 0.0, "decode_s": 0.0}
    start = time.perf_counter()
    faces = 0
    for s in range(0, len(corpus), 32):
        t0 = time.perf_counter()
        images = [decode(d) for d in corpus[s:s + 32]]
        timing["decode_s"] += time.perf_counter() - t0
        faces += run_models(images, detector, embedder, 32, device, timing)
    return {"images": len(corpus), "faces": faces, "seconds": time.perf_counter() - start, **timing}


def run_decode(corpus: list[bytes], procs: int) -> dict:
    """Decoding alone, in ``procs`` processes: the most the CPUs can feed the GPU."""
    with ProcessPoolExecutor(procs) as pool:
        list(pool.map(decode, corpus[:procs * 2]))  # start the workers
        start = time.perf_counter()
        pixels = sum(im.shape[0] * im.shape[1] for im in pool.map(decode, corpus, chunksize=8))
    return {"images": len(corpus), "faces": 0, "seconds": time.perf_counter() - start, "megapixels": pixels / 1e6}


def run_pipeline(corpus: list[bytes], device: str, weights: str, procs: int, batch: int, canvas: int,
                 emb_batch: int) -> dict:
    """Decode processes feed batched detection and embedding (the shape of an ingest with --device cuda)."""
    detector, embedder = make_models(device, weights, canvas, batch, emb_batch)
    timing = {"detect_s": 0.0, "embed_s": 0.0}
    with ProcessPoolExecutor(procs) as pool:
        warm = list(pool.map(decode, corpus[:batch]))
        run_models(warm, detector, embedder, batch, device, {"detect_s": 0.0, "embed_s": 0.0})
        start = time.perf_counter()
        faces, pending = 0, []
        for image in pool.map(decode, corpus, chunksize=4):
            pending.append(image)
            if len(pending) == batch:
                faces += run_models(pending, detector, embedder, batch, device, timing)
                pending = []
        faces += run_models(pending, detector, embedder, batch, device, timing)
        seconds = time.perf_counter() - start
    return {"images": len(corpus), "faces": faces, "seconds": seconds, **timing,
            "batch": batch, "canvas": canvas, "decode_procs": procs}


def face_input(data: bytes):
    """Decode one image into the model stage's input, downscaled as an ingest worker does it."""
    from PIL import Image

    from vidpipe.pipeline.face_stage import make_face_input

    return make_face_input("bench", Image.fromarray(decode(data)))


def run_ray_models(corpus: list[bytes], device: str, weights: str, procs: int, batch: int) -> dict:
    """The ingest's Ray model stage (faces and scenes in GPU actors), fed by ``procs`` decode processes."""
    from dataclasses import replace

    from vidpipe.models.registry import ModelConfig
    from vidpipe.pipeline.ray_face_stage import RayModelStage, cluster_accelerators
    from vidpipe.pipeline.ray_pool import connect_ray, import_ray

    ray = import_ray()
    owns = connect_ray(ray, None, procs)
    gpus = int(cluster_accelerators(ray))
    stage = RayModelStage(ModelConfig(weights=weights), device, actors=max(1, gpus), accelerators=1 if gpus else 0,
                          batch_images=batch, owns_ray=owns)
    try:
        with ProcessPoolExecutor(procs) as pool:
            def run(items: list) -> tuple[int, int, float]:
                start = time.perf_counter()
                for i, item in enumerate(items):
                    stage.submit(replace(item, sha256=str(i), want_scene=True))
                outputs = []
                while len(outputs) < len(items):
                    outputs += stage.results()
                    time.sleep(0.002)
                assert not any(o.error for o in outputs), [o.error for o in outputs if o.error][:3]
                return (sum(len(o.faces) for o in outputs), sum(o.scene is not None for o in outputs),
                        time.perf_counter() - start)

            run(list(pool.map(face_input, corpus[:batch])))  # warm-up: model load, first kernels
            decode_start = time.perf_counter()
            items = list(pool.map(face_input, corpus, chunksize=4))
            decode_s = time.perf_counter() - decode_start
        faces, scenes, seconds = run(items)
    finally:
        stage.close()
    return {"images": len(corpus), "faces": faces, "scenes": scenes, "seconds": seconds, "decode_s": decode_s,
            "batch": batch, "actors": max(1, gpus), "gpus": gpus}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, nargs="*",
                        default=[REPO / "sample_media" / "photos", REPO.parent / "shared" / "data" / "faces"])
    parser.add_argument("--n", type=int, default=1024, help="images per timed run")
    parser.add_argument("--naive-n", type=int, default=128, help="images for the (slow) naive loop")
    parser.add_argument("--weights", default=None, help="FaceNet weights file (default: the installed one)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--decode-procs", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--batch", type=int, nargs="*", default=[32, 64, 128])
    parser.add_argument("--canvas", type=int, default=640, help="detection canvas side (px) in the pipeline rows")
    parser.add_argument("--ray-batch", type=int, nargs="*", default=[64],
                        help="batch sizes of the Ray model-stage rows (none: leave them out)")
    parser.add_argument("--out", type=Path, default=REPO / "bench_out" / "gpu_bench.json")
    args = parser.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu bench skipped: no CUDA device (torch.cuda.is_available() is False)")
        return 0
    # cuDNN autotuning pays only when shapes repeat: off for the rows whose image sizes vary (it re-tunes
    # for every new pyramid shape), on for the canvas rows, where every batch has one shape.
    torch.backends.cudnn.benchmark = False
    from vidpipe.models.weights import find_facenet_weights

    weights = str(find_facenet_weights(args.weights).path)
    corpus = load_corpus(args.images, args.n)
    env = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
           "torch": torch.__version__, "cpus": os.cpu_count(), "images": len(corpus),
           "distinct_images": len(set(corpus))}
    print(json.dumps(env), flush=True)
    rows: dict[str, dict] = {}
    rows["naive"] = run_naive(corpus[:args.naive_n], args.device, weights)
    print("naive", rows["naive"], flush=True)
    rows["batched"] = run_batched(corpus, args.device, weights)
    print("batched", rows["batched"], flush=True)
    rows["decode"] = run_decode(corpus, args.decode_procs)
    print("decode", rows["decode"], flush=True)
    torch.backends.cudnn.benchmark = True
    for batch in args.batch:
        name = f"pipeline b{batch}"
        rows[name] = run_pipeline(corpus, args.device, weights, args.decode_procs, batch, args.canvas, 128)
        print(name, rows[name], flush=True)
    try:
        import ray  # noqa: F401
    except ImportError:
        args.ray_batch = []
        print("ray models rows skipped: the ray package is not installed", flush=True)
    for batch in args.ray_batch:
        name = f"ray models b{batch}"
        rows[name] = run_ray_models(corpus, args.device, weights, args.decode_procs, batch)
        print(name, rows[name], flush=True)
    base = rows["naive"]["images"] / rows["naive"]["seconds"]
    print(f"\n{'row':<16}{'images/s':>10}{'faces/s':>10}{'x naive':>9}{'detect s':>10}{'embed s':>9}")
    for name, r in rows.items():
        ips, fps = r["images"] / r["seconds"], r["faces"] / r["seconds"]
        r.update(images_per_s=round(ips, 1), faces_per_s=round(fps, 1), x_naive=round(ips / base, 2))
        print(f"{name:<16}{ips:>10.1f}{fps:>10.1f}{ips / base:>9.2f}{r.get('detect_s', 0):>10.2f}{r.get('embed_s', 0):>9.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": env, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
