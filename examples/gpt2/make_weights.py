"""Write random GPT-2 weights (Hugging Face names) to a safetensors file.

    /usr/bin/python3 make_weights.py --preset tiny --seed 0 --out gpt2-tiny.safetensors
    /usr/bin/python3 make_weights.py --V 96 --D 64 --H 4 --L 2 --CTX 64 --out w.safetensors
    options: --preset tiny|124m  --V --D --H --L --CTX  --seed N  --dtype f32|f16|bf16  --hf-buffers

The tensor names are exactly those of Hugging Face's GPT-2 checkpoints (wte.weight, wpe.weight,
h.N.ln_1.weight, h.N.attn.c_attn.weight, ..., ln_f.bias). --hf-buffers also writes the two buffers
older checkpoints carry per layer, h.N.attn.bias (the causal mask, [1, 1, CTX, CTX]) and
h.N.attn.masked_bias (a scalar, -1e4), which kiln's gpt2.kiln does not read: a file with them has
exactly the key set of such a checkpoint.

Matrices ~ N(0, 0.02) (GPT-2 init), layernorm weights 1 + N(0, 0.05), biases and
layernorm biases N(0, 0.02), so nothing is trivially zero or one. The config
(JSON with V, D, H, L, CTX) goes into __metadata__["config"].
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from safetensors_io import save  # noqa: E402

PRESETS = {"tiny": dict(V=96, D=64, H=4, L=2, CTX=64),
           "124m": dict(V=50257, D=768, H=12, L=12, CTX=1024)}


def make(V, D, H, L, CTX, seed=0, hf_buffers=False):
    assert D % H == 0
    rng = np.random.default_rng(seed)

    def mat(*shape, std=0.02):
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    w = {"wte.weight": mat(V, D), "wpe.weight": mat(CTX, D)}
    for i in range(L):
        p = f"h.{i}."
        for ln in ("ln_1", "ln_2"):
            w[p + ln + ".weight"] = 1 + mat(D, std=0.05)
            w[p + ln + ".bias"] = mat(D)
        for name, n_in, n_out in (("attn.c_attn", D, 3 * D), ("attn.c_proj", D, D),
                                  ("mlp.c_fc", D, 4 * D), ("mlp.c_proj", 4 * D, D)):
            w[p + name + ".weight"] = mat(n_in, n_out)
            w[p + name + ".bias"] = mat(n_out)
    w["ln_f.weight"] = 1 + mat(D, std=0.05)
    w["ln_f.bias"] = mat(D)
    if hf_buffers:  # made after the parameters so that they do not change them
        for i in range(L):
            w[f"h.{i}.attn.bias"] = np.tril(np.ones((CTX, CTX), np.float32)).reshape(1, 1, CTX, CTX)
            w[f"h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=PRESETS)
    for k in ("V", "D", "H", "L", "CTX"):
        ap.add_argument("--" + k, type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=("f32", "f16", "bf16"), default="f32")
    ap.add_argument("--hf-buffers", action="store_true",
                    help="also write h.N.attn.bias and h.N.attn.masked_bias, as older checkpoints have")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg = dict(PRESETS[a.preset]) if a.preset else {}
    for k in ("V", "D", "H", "L", "CTX"):
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    missing = [k for k in ("V", "D", "H", "L", "CTX") if k not in cfg]
    if missing:
        ap.error("missing " + ", ".join(missing) + " (or use --preset)")
    w = make(seed=a.seed, hf_buffers=a.hf_buffers, **cfg)
    meta = {"config": json.dumps(cfg), "format": "gpt2", "seed": str(a.seed)}
    save(a.out, w, dtype=a.dtype, metadata=meta)
    n = sum(v.size for v in w.values())
    print(f"wrote {a.out}: {len(w)} tensors, {n} params, {a.dtype}, config {cfg}")


if __name__ == "__main__":
    main()
