"""safetensors_io.py — read and write safetensors files with numpy only.

The format (https://huggingface.co/docs/safetensors) is simple enough to
implement here rather than depend on the `safetensors` package:

    8 bytes     N, the header length, unsigned little-endian
    N bytes     a JSON object {name: {"dtype": "F32", "shape": [2, 3],
                "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
                padded with spaces to a multiple of 8 (writers may pad)
    the rest    the data: each tensor row-major, little-endian, at
                [begin, end) relative to the end of the header

Offsets must tile the data without gaps or overlap; the reader checks that,
and the sizes against dtype x shape, so a truncated or hand-edited file is
an error with the tensor's name rather than garbage numbers.

    save("w.safetensors", {"w": np.zeros((2, 3), np.float32)}, {"step": "1"})
    tensors, meta = load("w.safetensors")
"""
import json
import struct

import numpy as np

# safetensors dtype codes <-> numpy dtypes (little-endian).
_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
    # numpy has no bfloat16: a BF16 tensor is its raw bits as uint16 (the
    # top half of each float32; see to_bf16 / from_bf16)
    "BF16": np.dtype("<u2"),
}
_CODES = {v: k for k, v in _DTYPES.items()}



def to_bf16(x):
    """float32 array -> bfloat16 bits (uint16), rounded to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def from_bf16(b):
    """bfloat16 bits (uint16) -> float32, exactly."""
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


# A header larger than this is certainly not a real file (100 MB).
_MAX_HEADER = 100 << 20


class SafetensorsError(ValueError):
    """A malformed file: the message names the file and the tensor."""


def _code_of(arr):
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    for np_dt, code in _CODES.items():
        if dt == np_dt:
            return code
    raise SafetensorsError(f"dtype {arr.dtype} has no safetensors code")


def save(path, tensors, metadata=None):
    """Writes {name: array} (and optional {str: str} metadata) to path.

    Tensors are written in sorted name order, as the reference writer does,
    so the same dict always gives the same bytes."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        code = _code_of(arr)
        data = arr.astype(_DTYPES[code], copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def _check_entry(path, name, e, data_len):
    if not isinstance(e, dict) or e.get("dtype") not in _DTYPES:
        raise SafetensorsError(f"{path}: tensor '{name}': unknown or missing dtype")
    shape, offs = e.get("shape"), e.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise SafetensorsError(f"{path}: tensor '{name}': bad shape {shape!r}")
    if (not isinstance(offs, list) or len(offs) != 2 or not all(isinstance(o, int) for o in offs)
            or not 0 <= offs[0] <= offs[1] <= data_len):
        raise SafetensorsError(f"{path}: tensor '{name}': bad data_offsets {offs!r}")
    want = int(np.prod(shape, dtype=np.int64)) * _DTYPES[e["dtype"]].itemsize
    if offs[1] - offs[0] != want:
        raise SafetensorsError(f"{path}: tensor '{name}': {offs[1] - offs[0]} bytes for "
                               f"{e['dtype']}{shape} (expected {want})")


def _check_tiling(path, header, data_len):
    spans = sorted((e["data_offsets"][0], e["data_offsets"][1], n) for n, e in header.items())
    at = 0
    for begin, end, name in spans:
        if begin != at:
            raise SafetensorsError(f"{path}: tensor '{name}' starts at {begin}, expected {at} "
                                   "(gap or overlap)")
        at = end
    if at != data_len:
        raise SafetensorsError(f"{path}: {data_len - at} trailing bytes after the last tensor")


def load(path):
    """Returns ({name: np.ndarray}, {str: str} metadata).  Arrays are copies
    (writable), in the file's dtype."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SafetensorsError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > _MAX_HEADER or 8 + n > len(blob):
        raise SafetensorsError(f"{path}: header length {n} does not fit the file")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    data = memoryview(blob)[8 + n:]
    for name, e in header.items():
        _check_entry(path, name, e, len(data))
    _check_tiling(path, header, len(data))
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype=_DTYPES[e["dtype"]]).reshape(
            e["shape"]).copy()
    return out, meta
