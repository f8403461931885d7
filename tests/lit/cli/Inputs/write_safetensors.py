"""write_safetensors.py OUT NAME=DTYPE:SHAPE:VALUES ... — a small safetensors file for tests.

DTYPE is F32 or I32, SHAPE dims joined by x (4x8; "" for a scalar), VALUES a
comma-separated list repeated to fill the tensor, or "r" for seeded values in
[-1, 1).  Plain Python (struct, json): no numpy needed.
"""
import json
import random
import struct
import sys


def tensor(spec, rng):
    name, rest = spec.split("=", 1)
    dtype, shape, values = rest.split(":", 2)
    dims = [int(d) for d in shape.split("x")] if shape else []
    n = 1
    for d in dims:
        n *= d
    if values == "r":
        vals = [rng.uniform(-1, 1) for _ in range(n)]
    else:
        vals = [float(v) for v in values.split(",")]
        vals = [vals[k % len(vals)] for k in range(n)]
    fmt = "<%d%s" % (n, "f" if dtype == "F32" else "i")
    data = struct.pack(fmt, *(vals if dtype == "F32" else [int(v) for v in vals]))
    return name, dtype, dims, data


def main():
    rng = random.Random(0)
    header, blobs, off = {}, [], 0
    for spec in sys.argv[2:]:
        name, dtype, dims, data = tensor(spec, rng)
        header[name] = {"dtype": dtype, "shape": dims, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(sys.argv[1], "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


if __name__ == "__main__":
    main()
