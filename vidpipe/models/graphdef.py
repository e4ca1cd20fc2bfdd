"""Read the float constants of a frozen TensorFlow GraphDef with no TensorFlow, tensorboard or protobuf.

The FaceNet conversion needs only the Const nodes of one frozen graph. Parsing the protobuf wire
format for that subset takes a few dozen lines, so a plain `pip install vidpipe` can convert the
weights on first use without the `tensorboard` wheel (and its grpcio/absl/werkzeug tree), whose only
job here was to carry the generated GraphDef message classes.

Field numbers are those of tensorflow/core/framework/{graph,node_def,attr_value,tensor,
tensor_shape}.proto (stable since TF 1.0):

- GraphDef.node = 1 (NodeDef); NodeDef.name = 1, op = 2, attr = 5 (map<string, AttrValue>: key 1, value 2);
- AttrValue.tensor = 8 (TensorProto); TensorProto.dtype = 1, tensor_shape = 2, tensor_content = 4,
  float_val = 5 (packed or not); TensorShapeProto.dim = 2; Dim.size = 1.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

DT_FLOAT = 1  # tensorflow DataType enum

# Wire types of the protobuf encoding.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at `pos`; returns (value, next position)."""
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def fields(buf: memoryview):
    """Yield (field number, wire type, value) for one message; LEN values are memoryview slices."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == _VARINT:
            val, pos = _varint(buf, pos)
        elif wt == _I64:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wt == _LEN:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wt == _I32:
            val, pos = buf[pos:pos + 4], pos + 4
        else:  # groups (3, 4) are not used by these messages
            raise ValueError(f"unsupported wire type {wt}")
        if pos > end:
            raise ValueError("truncated message")
        yield num, wt, val


def _tensor_array(buf: memoryview) -> np.ndarray | None:
    """A float32 TensorProto as an array (packed bytes, a value list or a one-value splat); else None."""
    dtype, shape, content = 0, [], None
    floats: list[np.ndarray] = []
    for num, wt, val in fields(buf):
        if num == 1 and wt == _VARINT:
            dtype = val
        elif num == 2 and wt == _LEN:
            for dnum, dwt, dim in fields(val):
                if dnum == 2 and dwt == _LEN:
                    size = next((v for n, w, v in fields(dim) if n == 1 and w == _VARINT), 0)
                    shape.append(size)
        elif num == 4 and wt == _LEN:
            content = bytes(val)
        elif num == 5:  # float_val: packed (LEN) or one fixed32 per value
            floats.append(np.frombuffer(val, dtype="<f4"))
    if dtype != DT_FLOAT:
        return None
    shape_t = tuple(shape)
    if content:
        return np.frombuffer(content, dtype="<f4").reshape(shape_t).copy()
    vals = np.concatenate(floats).astype(np.float32) if floats else np.zeros(0, np.float32)
    if vals.size == int(np.prod(shape_t)):
        return vals.reshape(shape_t)
    if vals.size == 1:  # TF stores a constant-filled tensor as one value
        return np.full(shape_t, vals[0], dtype=np.float32)
    raise ValueError(f"cannot decode tensor of shape {shape_t} from {vals.size} values")


def _node_const(buf: memoryview) -> tuple[str, np.ndarray | None]:
    """(name, float32 value) of a NodeDef; the value is None unless it is a float Const."""
    name, op, value = "", "", None
    for num, wt, val in fields(buf):
        if num == 1 and wt == _LEN:
            name = bytes(val).decode()
        elif num == 2 and wt == _LEN:
            op = bytes(val).decode()
        elif num == 5 and wt == _LEN:  # one map entry: key (1) -> AttrValue (2)
            key, attr = "", None
            for enum_, ewt, ev in fields(val):
                if enum_ == 1 and ewt == _LEN:
                    key = bytes(ev).decode()
                elif enum_ == 2 and ewt == _LEN:
                    attr = ev
            if key == "value" and attr is not None:
                value = attr
    if op != "Const" or value is None:
        return name, None
    tensor = next((v for n, w, v in fields(value) if n == 8 and w == _LEN), None)
    return name, (_tensor_array(tensor) if tensor is not None else None)


def float_consts(pb_path: str | os.PathLike) -> OrderedDict[str, np.ndarray]:
    """All float32 Const nodes of a frozen GraphDef file, in graph order."""
    buf = memoryview(Path(pb_path).read_bytes())
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for num, wt, node in fields(buf):
        if num == 1 and wt == _LEN:
            name, arr = _node_const(node)
            if arr is not None:
                out[name] = arr
    return out
