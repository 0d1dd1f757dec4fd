"""Tiny safetensors reader/writer (numpy only, no external library).

File layout: 8-byte little-endian u64 header length N, N bytes of JSON header
{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}
padded with spaces to a multiple of 8, then raw little-endian C-order tensor
data (offsets relative to the start of the data section).

Supported dtypes: F32, F16, BF16 (stored as raw uint16 bits), F64, I32, I64.

    from safetensors_io import save, load
    save("w.safetensors", {"a": np.zeros((2, 3), np.float32)}, dtype="f16",
         metadata={"config": "{...}"})
    tensors, metadata = load("w.safetensors")   # floats come back as float32
"""
import json
import struct

import numpy as np

_NP = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I32": "<i4", "I64": "<i8",
       "BF16": "<u2"}


def f32_to_bf16_bits(a):
    """float32 array -> uint16 bfloat16 bits, round to nearest even."""
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2")  # (NaN inputs are not expected here)


def bf16_bits_to_f32(b):
    return (np.asarray(b, dtype="<u2").astype("<u4") << 16).view("<f4")


def round_to(a, dtype):
    """Round a float array through the storage dtype ('f32'|'f16'|'bf16'), return float32."""
    dtype = dtype.lower()
    a = np.asarray(a, dtype=np.float32)
    if dtype == "f16":
        return a.astype("<f2").astype(np.float32)
    if dtype == "bf16":
        return bf16_bits_to_f32(f32_to_bf16_bits(a))
    assert dtype == "f32", dtype
    return a


def save(path, tensors, dtype="f32", metadata=None):
    """Write dict name -> array. Float arrays are stored as `dtype`
    ('f32'|'f16'|'bf16'); integer arrays keep I32/I64."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = np.asarray(t)
        if a.dtype.kind in "iu":
            st = "I64" if a.dtype.itemsize == 8 else "I32"
            data = a.astype(_NP[st])
        elif dtype.lower() == "bf16":
            st, data = "BF16", f32_to_bf16_bits(a)
        else:
            st = dtype.upper()
            data = a.astype(_NP[st])
        raw = np.ascontiguousarray(data).tobytes()
        header[name] = {"dtype": st, "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


def load(path, keep_dtype=False):
    """Return (dict name -> numpy array, metadata dict). F16/BF16 are widened
    to float32 unless keep_dtype (then BF16 comes back as uint16 bits)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = np.dtype(_NP[info["dtype"]])
        a = np.frombuffer(data, dtype=dt, count=(e - b) // dt.itemsize, offset=b)
        a = a.reshape(info["shape"])
        if not keep_dtype:
            if info["dtype"] == "BF16":
                a = bf16_bits_to_f32(a)
            elif info["dtype"] == "F16":
                a = a.astype(np.float32)
        out[name] = np.array(a)  # writable copy
    return out, meta
