"""Write a Llama safetensors file (the one kiln compiles) as a GGUF file llama.cpp loads.

    /usr/bin/python3 bench/gguf_write.py WEIGHTS.safetensors OUT.gguf --type f32|f16|q8_0|q4_0 [--name NAME]

WEIGHTS.safetensors is what examples/llama/make_weights.py writes: Hugging Face LlamaForCausalLM names
(with or without the leading "model."), the config (V, D, H, KVH, F, L, CTX, EPS, THETA) in
__metadata__["config"]. F32, F16 and BF16 tensors are read (BF16/F16 widened exactly to float32).

What is written (GGUF version 3, little-endian, tensor data aligned to 32 bytes):
- metadata: general.architecture "llama" and the llama.* hyperparameters llama.cpp reads for that
  architecture (context/embedding/feed-forward lengths, block count, head counts, RMSNorm epsilon, rotary
  base and dimensions, vocabulary size), general.file_type, and a minimal SentencePiece-style vocabulary
  (tokenizer.ggml.model "llama"): <unk>, <s>, </s>, then byte tokens <0x00>... as far as the vocabulary
  reaches, then placeholder tokens t<i>, all distinct, scores 0. The benchmark feeds token ids, so the
  vocabulary only has to be valid and of the model's size V.
- tensors under llama.cpp's names (token_embd, blk.N.attn_norm / attn_q / attn_k / attn_v / attn_output /
  ffn_norm / ffn_gate / ffn_up / ffn_down, output_norm, output). GGUF lists dimensions innermost first,
  so a [out, in] row-major matrix is written as it is with dims (in, out).
- every 2-D tensor in the chosen type, the 1-D norm weights in F32 (llama.cpp keeps them F32 in its
  own quantized files too). Unlike llama.cpp's quantize tool (which keeps `output` at a higher
  precision for Q4_0), every matrix here is in the one type, so a file's type says what every matrix is.
- q and k projections with their rows reordered inside each head: Hugging Face rotates element i of a
  head with element i + HD/2 (rotate_half), llama.cpp's Llama graph rotates adjacent pairs (2i, 2i+1).
  Moving row i to 2i and row i + HD/2 to 2i + 1 makes llama.cpp compute the same attention (the
  same permutation of q and k leaves every q.k unchanged).

Block formats (ggml's, 32 weights along a row per block):
- Q8_0: fp16 scale d = max|x| / 127, then 32 int8 q = round(x / d) (half away from zero); x ~ d * q.
- Q4_0: fp16 scale d = m / -8 where m is the weight of largest magnitude (the first if tied), then 16 bytes:
  byte j holds weight j in its low nibble and weight j + 16 in its high nibble, each
  min(15, trunc(x / d + 8.5)); x ~ d * (q - 8).
The arithmetic follows ggml's reference quantizers (float32 products, the scale rounded to fp16 after the
inverse is taken from the float32 scale), so a matrix quantized here equals what ggml's own
quantize_row_*_ref would write. Rows whose length is not a multiple of 32 cannot be quantized: an error.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0 = 0, 1, 2, 8
TYPES = {"f32": GGML_F32, "f16": GGML_F16, "q8_0": GGML_Q8_0, "q4_0": GGML_Q4_0}
FILE_TYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7}  # llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q4_0, MOSTLY_Q8_0
ALIGN = 32
QK = 32  # weights per block, Q8_0 and Q4_0

# GGUF value types
U32, I32, F32, STR, ARR = 4, 5, 6, 8, 9


# ---------------------------------------------------------------------------------------------
# safetensors, read lazily (a TinyLlama-sized file is 4.4 GB in f32: one tensor at a time)

ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def st_open(path):
    """(header without __metadata__, metadata, memmap of the data) of a safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", {})
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    return header, meta, data


def st_tensor(header, data, name):
    info = header[name]
    if info["dtype"] not in ST_DTYPES:
        raise SystemExit(f"gguf_write: tensor {name} is {info['dtype']}; expected F32, F16 or BF16")
    b, e = info["data_offsets"]
    a = data[b:e].view(ST_DTYPES[info["dtype"]]).reshape(info["shape"])
    if info["dtype"] == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# quantization (rows of float32 -> bytes)


def blocks(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[-1] % QK:
        raise ValueError(f"rows of {x.shape[-1]} weights are not a whole number of {QK}-weight blocks")
    return x.reshape(-1, QK)


def q8_0(x):
    b = blocks(x)
    amax = np.abs(b).max(axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    v = (b * inv[:, None]).astype(np.float32).astype(np.float64)   # the float32 product, as in C
    q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)   # roundf: half away from zero
    out = np.empty((b.shape[0], 2 + QK), np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def q4_0(x):
    b = blocks(x)
    idx = np.argmax(np.abs(b), axis=1)                  # first of the largest magnitudes
    m = b[np.arange(b.shape[0]), idx]
    d = (m / np.float32(-8)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    v = (b * inv[:, None]).astype(np.float32) + np.float32(8.5)   # in [0.5, 16.5]: trunc = floor
    q = np.minimum(15, np.trunc(v).astype(np.int32)).astype(np.uint8)
    out = np.empty((b.shape[0], 2 + QK // 2), np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q[:, :QK // 2] | (q[:, QK // 2:] << 4)
    return out.tobytes()


def nbytes(shape, gtype):
    n = int(np.prod(shape))
    return {GGML_F32: 4 * n, GGML_F16: 2 * n, GGML_Q8_0: n // QK * 34, GGML_Q4_0: n // QK * 18}[gtype]


def encode(a, gtype):
    """Bytes of array a (row-major, rows along the last axis) in ggml type gtype, 4096 rows at a time."""
    if gtype == GGML_F32:
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if gtype == GGML_F16:
        return np.ascontiguousarray(a).astype("<f2").tobytes()
    f = q8_0 if gtype == GGML_Q8_0 else q4_0
    a2 = a.reshape(-1, a.shape[-1])
    return b"".join(f(a2[i:i + 4096]) for i in range(0, a2.shape[0], 4096))


# ---------------------------------------------------------------------------------------------
# GGUF


def gstr(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    out = gstr(key) + struct.pack("<I", vtype)
    if vtype == U32:
        return out + struct.pack("<I", value)
    if vtype == I32:
        return out + struct.pack("<i", value)
    if vtype == F32:
        return out + struct.pack("<f", value)
    if vtype == STR:
        return out + gstr(value)
    etype, items = value  # array
    out += struct.pack("<IQ", etype, len(items))
    if etype == STR:
        return out + b"".join(gstr(s) for s in items)
    return out + np.asarray(items, dtype={F32: "<f4", I32: "<i4", U32: "<u4"}[etype]).tobytes()


def vocabulary(V):
    """A minimal SentencePiece-style vocabulary of V distinct tokens and llama.cpp's token types."""
    toks, types = ["<unk>", "<s>", "</s>"], [2, 3, 3]  # UNKNOWN, CONTROL, CONTROL
    for i in range(256):
        toks.append(f"<0x{i:02X}>")
        types.append(6)  # BYTE
    toks, types = toks[:V], types[:V]
    while len(toks) < V:
        toks.append(f"t{len(toks)}")
        types.append(1)  # NORMAL
    return toks, types


def permute_rope(w, heads):
    """Rows of a q or k projection [heads*HD, D]: row i of each head to 2i, row i + HD/2 to 2i + 1."""
    n, d = w.shape
    hd = n // heads
    return w.reshape(heads, 2, hd // 2, d).swapaxes(1, 2).reshape(n, d)


def tensors_of(header, cfg):
    """[(gguf name, safetensors name, transform or None)] in llama.cpp's order."""
    pre = "model." if "model.embed_tokens.weight" in header else ""
    out = [("token_embd.weight", pre + "embed_tokens.weight", None)]
    for i in range(cfg["L"]):
        p = f"{pre}layers.{i}."
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", p + "input_layernorm.weight", None),
                (b + "attn_q.weight", p + "self_attn.q_proj.weight", ("rope", cfg["H"])),
                (b + "attn_k.weight", p + "self_attn.k_proj.weight", ("rope", cfg["KVH"])),
                (b + "attn_v.weight", p + "self_attn.v_proj.weight", None),
                (b + "attn_output.weight", p + "self_attn.o_proj.weight", None),
                (b + "ffn_norm.weight", p + "post_attention_layernorm.weight", None),
                (b + "ffn_gate.weight", p + "mlp.gate_proj.weight", None),
                (b + "ffn_up.weight", p + "mlp.up_proj.weight", None),
                (b + "ffn_down.weight", p + "mlp.down_proj.weight", None)]
    out += [("output_norm.weight", pre + "norm.weight", None), ("output.weight", "lm_head.weight", None)]
    return out


def write(src, dst, typ, name=None):
    header, meta, data = st_open(src)
    try:
        cfg = json.loads(meta["config"])
    except (KeyError, ValueError):
        raise SystemExit(f"gguf_write: {src}: no config in __metadata__ (examples/llama/make_weights.py writes it)")
    for k in ("V", "D", "H", "KVH", "F", "L", "CTX"):
        if k not in cfg:
            raise SystemExit(f"gguf_write: {src}: the config lacks {k}")
    hd = cfg.get("HD", cfg["D"] // cfg["H"])
    gtype = TYPES[typ]
    plan = tensors_of(header, cfg)
    for _, st_name, _ in plan:
        if st_name not in header:
            raise SystemExit(f"gguf_write: {src}: no tensor {st_name}")
    infos = []
    for g, st_name, tr in plan:
        shape = header[st_name]["shape"]
        t = gtype if len(shape) == 2 else GGML_F32
        if t in (GGML_Q8_0, GGML_Q4_0) and shape[-1] % QK:
            raise SystemExit(f"gguf_write: {st_name} has rows of {shape[-1]} weights, not a multiple of {QK}: "
                             f"it cannot be written as {typ} (choose sizes that are multiples of 32, or f32/f16)")
        infos.append((g, st_name, tr, shape, t))

    toks, types = vocabulary(cfg["V"])
    a = "llama"
    kvs = [kv("general.architecture", STR, a),
           kv("general.name", STR, name or os.path.splitext(os.path.basename(dst))[0]),
           kv("general.file_type", U32, FILE_TYPE[typ]),
           kv("general.alignment", U32, ALIGN),
           kv(f"{a}.vocab_size", U32, cfg["V"]),
           kv(f"{a}.context_length", U32, cfg["CTX"]),
           kv(f"{a}.embedding_length", U32, cfg["D"]),
           kv(f"{a}.block_count", U32, cfg["L"]),
           kv(f"{a}.feed_forward_length", U32, cfg["F"]),
           kv(f"{a}.attention.head_count", U32, cfg["H"]),
           kv(f"{a}.attention.head_count_kv", U32, cfg["KVH"]),
           kv(f"{a}.attention.layer_norm_rms_epsilon", F32, float(cfg.get("EPS", 1e-5))),
           kv(f"{a}.rope.freq_base", F32, float(cfg.get("THETA", 10000.0))),
           kv(f"{a}.rope.dimension_count", U32, hd),
           kv("tokenizer.ggml.model", STR, "llama"),
           kv("tokenizer.ggml.tokens", ARR, (STR, toks)),
           kv("tokenizer.ggml.scores", ARR, (F32, [0.0] * cfg["V"])),
           kv("tokenizer.ggml.token_type", ARR, (I32, types)),
           kv("tokenizer.ggml.unknown_token_id", U32, 0),
           kv("tokenizer.ggml.bos_token_id", U32, 1),
           kv("tokenizer.ggml.eos_token_id", U32, 2)]
    tinfo, off = [], 0
    for g, _, _, shape, t in infos:
        dims = list(reversed(shape))  # innermost first
        tinfo.append(gstr(g) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
                     + struct.pack("<IQ", t, off))
        off += nbytes(shape, t)
        off += -off % ALIGN
    head = b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(kvs)) + b"".join(kvs) + b"".join(tinfo)
    head += b"\0" * (-len(head) % ALIGN)
    part = dst + ".partial"
    with open(part, "wb") as f:
        f.write(head)
        written = 0
        for g, st_name, tr, shape, t in infos:
            x = st_tensor(header, data, st_name)
            if tr and tr[0] == "rope":
                x = permute_rope(x, tr[1])
            raw = encode(x, t)
            assert len(raw) == nbytes(shape, t), g
            f.write(raw)
            written += len(raw)
            pad = -written % ALIGN
            f.write(b"\0" * pad)
            written += pad
    os.replace(part, dst)
    return {"tensors": len(infos), "bytes": len(head) + written, "config": cfg}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("out")
    ap.add_argument("--type", choices=sorted(TYPES), default="f32")
    ap.add_argument("--name")
    a = ap.parse_args()
    if not os.path.exists(a.weights):
        sys.exit(f"gguf_write: {a.weights}: no such file")
    r = write(a.weights, a.out, a.type, a.name)
    print(f"wrote {a.out}: {r['tensors']} tensors, {r['bytes']} bytes, {a.type}")


if __name__ == "__main__":
    main()
