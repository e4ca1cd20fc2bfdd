"""The result channel's format: a small typed codec instead of pickle.

A decode worker has just parsed hostile bytes; if a decoder bug gave the attacker code in that
process, whatever it sends back must not become code in the parent. ``pickle.loads`` would run it
(``__reduce__`` names any callable), so results travel in this plain format and the parent
rebuilds only values:

- ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``;
- numpy arrays of an allowlisted dtype (no object arrays), shape checked against the byte count;
- instances of the exact dataclasses in :data:`ALLOWED_CLASSES` (the task results of
  :mod:`vidpipe.pipeline.tasks`, ``FaceInput``, ``TaskFailure``, ...), rebuilt by calling the
  class with exactly its declared fields, then checked by the class's validator when it has one
  (array dtype and shape, finite scale).

Why a codec and not a restricted ``Unpickler`` whose ``find_class`` allows those classes: the
unpickler still runs the pickle virtual machine on hostile input (opcodes that build arbitrary
objects through ``__setstate__``/``__reduce_ex__`` of allowed classes, memo tricks, huge
allocations before any check), and its safety depends on every allowed class being harmless to
build without ``__init__``. Here the decoder is ~100 lines that only ever produce the types above,
every length is checked against the bytes actually received, nesting depth is capped, and an
allowed class is only ever built through its own ``__init__`` with named fields.

Encoding refuses anything else (``WireError``), so a task that starts returning a new type fails
loudly (``worker_error:WireError``) until the type is added here.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

MAGIC = b"VPW1"
MAX_DEPTH = 48           # nesting of lists/dicts/dataclasses; results are a few levels deep
MAX_ARRAY_NDIM = 4
# dtype.str of the arrays a result may carry (pixels, vectors, keypoints, hashes).
ALLOWED_DTYPES = frozenset({"|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8", "|b1"})


class WireError(ValueError):
    """The value cannot be sent, or the bytes received are not a well-formed allowed value."""


def _check_face_input(obj: Any) -> None:
    _check_pixels(obj.pixels)
    _check_scale(obj.scale)


def _check_query_features(obj: Any) -> None:
    if obj.pixels is not None:
        _check_pixels(obj.pixels)
    if obj.scale is not None:
        _check_scale(obj.scale)
    if obj.tmk is not None and (obj.tmk.dtype.kind != "f" or obj.tmk.ndim != 1):
        raise WireError("tmk must be a 1-D float array")


def _check_local_features(obj: Any) -> None:
    points, desc = obj.points, obj.descriptors
    if not (isinstance(points, np.ndarray) and points.ndim == 2 and points.shape[1] == 2):
        raise WireError("points must be an (n, 2) array")
    if not (isinstance(desc, np.ndarray) and desc.ndim == 2 and desc.shape[0] == points.shape[0]):
        raise WireError("descriptors must be an (n, d) array matching points")
    _check_scale(obj.scale)


def _check_video_row(obj: Any) -> None:
    # The rows go into SQL columns as they are: the field types are checked here, not by SQLite.
    from vidpipe.store.video_rows import row_type_problem

    problem = row_type_problem(obj)
    if problem:
        raise WireError(problem)


def _check_pixels(pixels: Any) -> None:
    if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 3
            and pixels.shape[2] == 3):
        raise WireError("pixels must be an RGB uint8 HxWx3 array")


def _check_scale(scale: Any) -> None:
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise WireError("scale must be a positive finite number")


# "module:qualname" -> validator (None: the field values are plain data, nothing to check).
ALLOWED_CLASSES: dict[str, Callable[[Any], None] | None] = {
    "vidpipe.pipeline.sandbox:TaskFailure": None,
    "vidpipe.pipeline.tasks:HashResult": None,
    "vidpipe.pipeline.tasks:ContentResult": None,
    "vidpipe.sources.archive:MemberEntry": None,
    "vidpipe.pipeline.face_stage:FaceInput": _check_face_input,
    "vidpipe.video.vpdq:VpdqFeature": None,
    "vidpipe.pipeline.video_task:VideoProbe": None,  # plain numbers; vidpipe.video.budget bounds them
    "vidpipe.store.video_rows:KeyframeRow": _check_video_row,
    "vidpipe.store.video_rows:VpdqRow": _check_video_row,
    "vidpipe.extract.scenes.geometry:LocalFeatures": _check_local_features,
    "vidpipe.search.query_prep:QueryFeatures": _check_query_features,
}

_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


# ------------------------------------------------------------------------------------------ encode
def encode(value: Any) -> bytes:
    """``value`` as bytes; WireError when it holds a type this format does not carry."""
    parts: list[Any] = [MAGIC]
    _encode(value, parts, 0)
    return b"".join(parts)


def _encode(value: Any, out: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if value is None:
        out.append(b"N")
    elif value is True or value is False:
        out.append(b"T" if value else b"F")
    elif isinstance(value, (bool, np.bool_)):
        out.append(b"T" if value else b"F")
    elif isinstance(value, (int, np.integer)):
        v = int(value)
        if -(2**63) <= v < 2**63:
            out += [b"i", _I64.pack(v)]
        else:
            raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
            out += [b"I", _U32.pack(len(raw)), raw]
    elif isinstance(value, (float, np.floating)):
        out += [b"f", _F64.pack(float(value))]
    elif isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")  # surrogate-escaped path bytes survive
        out += [b"s", _U64.pack(len(raw)), raw]
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out += [b"b", _U64.pack(len(raw)), raw]
    elif isinstance(value, (list, tuple)):
        out += [b"l" if isinstance(value, list) else b"t", _U64.pack(len(value))]
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        out += [b"d", _U64.pack(len(value))]
        for k, v in value.items():
            _encode(k, out, depth + 1)
            _encode(v, out, depth + 1)
    elif isinstance(value, np.ndarray):
        _encode_array(value, out)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = f"{type(value).__module__}:{type(value).__qualname__}"
        if name not in ALLOWED_CLASSES:
            raise WireError(f"{name} is not an allowed result type (vidpipe.pipeline.wire.ALLOWED_CLASSES)")
        fields = [f for f in dataclasses.fields(value) if f.init]
        raw = name.encode()
        out += [b"D", _U32.pack(len(raw)), raw, _U32.pack(len(fields))]
        for f in fields:
            _encode(f.name, out, depth + 1)
            _encode(getattr(value, f.name), out, depth + 1)
    else:
        raise WireError(f"{type(value).__module__}.{type(value).__qualname__} cannot be sent as a result")


def _encode_array(a: np.ndarray, out: list) -> None:
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">" or a.dtype.str not in ALLOWED_DTYPES:
        raise WireError(f"array dtype {a.dtype} is not allowed")
    if a.ndim > MAX_ARRAY_NDIM:
        raise WireError("array has too many dimensions")
    raw = a.dtype.str.encode()
    out += [b"a", bytes([len(raw)]), raw, bytes([a.ndim]), *(_U64.pack(n) for n in a.shape),
            _U64.pack(a.nbytes), memoryview(a).cast("B") if a.nbytes else b""]


# ------------------------------------------------------------------------------------------ decode
def decode(data: bytes | bytearray | memoryview) -> Any:
    """Rebuild a value from :func:`encode`'s bytes; WireError for anything malformed or not allowed."""
    view = memoryview(data)
    if bytes(view[:4]) != MAGIC:
        raise WireError("not a vidpipe wire message")
    reader = _Reader(view, 4)
    value = reader.value(0)
    if reader.pos != len(view):
        raise WireError("trailing bytes after the value")
    return value


class _Reader:
    def __init__(self, view: memoryview, pos: int) -> None:
        self.view, self.pos = view, pos

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.view):
            raise WireError("message is truncated or a length is wrong")
        chunk = self.view[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, s: struct.Struct) -> Any:
        return s.unpack(self.take(s.size))[0]

    def count(self) -> int:
        # Every element takes at least one byte: a count larger than what is left is a lie.
        n = self.unpack(_U64)
        if n > len(self.view) - self.pos:
            raise WireError("element count exceeds the message")
        return n

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise WireError("value nested too deeply")
        tag = bytes(self.take(1))
        if tag == b"N":
            return None
        if tag in (b"T", b"F"):
            return tag == b"T"
        if tag == b"i":
            return self.unpack(_I64)
        if tag == b"I":
            return int.from_bytes(self.take(min(self.unpack(_U32), 4096)), "little", signed=True)
        if tag == b"f":
            return self.unpack(_F64)
        if tag == b"s":
            try:
                return str(self.take(self.unpack(_U64)), "utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise WireError("bad string") from exc
        if tag == b"b":
            return bytes(self.take(self.unpack(_U64)))
        if tag in (b"l", b"t"):
            items = [self.value(depth + 1) for _ in range(self.count())]
            return items if tag == b"l" else tuple(items)
        if tag == b"d":
            out = {}
            for _ in range(self.count()):
                key = self.value(depth + 1)
                try:
                    hash(key)
                except TypeError as exc:
                    raise WireError("unhashable dict key") from exc
                out[key] = self.value(depth + 1)
            return out
        if tag == b"a":
            return self.array()
        if tag == b"D":
            return self.dataclass(depth)
        raise WireError(f"unknown tag {tag!r}")

    def array(self) -> np.ndarray:
        dtype_str = bytes(self.take(self.take(1)[0])).decode("ascii", "replace")
        if dtype_str not in ALLOWED_DTYPES:
            raise WireError(f"array dtype {dtype_str!r} is not allowed")
        ndim = self.take(1)[0]
        if ndim > MAX_ARRAY_NDIM:
            raise WireError("array has too many dimensions")
        shape = tuple(self.unpack(_U64) for _ in range(ndim))
        dtype = np.dtype(dtype_str)
        nbytes = self.unpack(_U64)
        if math.prod(shape) * dtype.itemsize != nbytes:
            raise WireError("array shape does not match its byte count")
        raw = self.take(nbytes)
        # A copy: the arrays must be writable and must not pin the whole message in memory.
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()

    def dataclass(self, depth: int) -> Any:
        name = bytes(self.take(self.unpack(_U32))).decode("ascii", "replace")
        if name not in ALLOWED_CLASSES:
            raise WireError(f"{name!r} is not an allowed result type")
        cls = _resolve(name)
        n = self.unpack(_U32)
        expected = {f.name for f in dataclasses.fields(cls) if f.init}
        if n != len(expected):
            raise WireError(f"{name}: wrong number of fields")
        kwargs = {}
        for _ in range(n):
            field_name = self.value(depth + 1)
            if field_name not in expected or field_name in kwargs:
                raise WireError(f"{name}: unexpected field {field_name!r}")
            kwargs[field_name] = self.value(depth + 1)
        try:
            obj = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise WireError(f"{name}: {exc}") from exc
        check = ALLOWED_CLASSES[name]
        if check is not None:
            check(obj)
        return obj


def _resolve(name: str) -> type:
    module_name, _, qualname = name.partition(":")
    cls = getattr(importlib.import_module(module_name), qualname, None)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise WireError(f"{name} is not a dataclass")
    return cls
