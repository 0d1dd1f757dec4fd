"""Write random ViT weights (timm names) to a safetensors file.

    /usr/bin/python3 make_weights.py --preset tiny --seed 0 --out vit-small-random.safetensors
    /usr/bin/python3 make_weights.py --D 64 --H 4 --L 2 --P 8 --IMG 32 --CLASSES 10 --out w.safetensors
    options: --preset tiny|vit-tiny|vit-b16  --D --H --L --P --IMG --CLASSES  --seed N
             --dtype f32|f16|bf16

Matrices (incl. patch conv, cls_token, pos_embed, head) ~ N(0, 0.02), layernorm
weights 1 + N(0, 0.05), biases N(0, 0.02), so nothing is trivially zero or one.
The config (JSON with D, H, L, P, IMG, CLASSES) goes into __metadata__["config"].
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from safetensors_io import save  # noqa: E402

KEYS = ("D", "H", "L", "P", "IMG", "CLASSES")
PRESETS = {"tiny": dict(D=64, H=4, L=2, P=8, IMG=32, CLASSES=10),
           "vit-tiny": dict(D=192, H=3, L=12, P=16, IMG=224, CLASSES=1000),
           "vit-b16": dict(D=768, H=12, L=12, P=16, IMG=224, CLASSES=1000)}


def make(D, H, L, P, IMG, CLASSES, seed=0):
    assert D % H == 0 and IMG % P == 0
    N = (IMG // P) ** 2
    rng = np.random.default_rng(seed)

    def mat(*shape, std=0.02):
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    w = {"patch_embed.proj.weight": mat(D, 3, P, P), "patch_embed.proj.bias": mat(D),
         "cls_token": mat(1, 1, D), "pos_embed": mat(1, N + 1, D)}
    for i in range(L):
        p = f"blocks.{i}."
        for ln in ("norm1", "norm2"):
            w[p + ln + ".weight"] = 1 + mat(D, std=0.05)
            w[p + ln + ".bias"] = mat(D)
        for name, n_in, n_out in (("attn.qkv", D, 3 * D), ("attn.proj", D, D),
                                  ("mlp.fc1", D, 4 * D), ("mlp.fc2", 4 * D, D)):
            w[p + name + ".weight"] = mat(n_out, n_in)
            w[p + name + ".bias"] = mat(n_out)
    w["norm.weight"] = 1 + mat(D, std=0.05)
    w["norm.bias"] = mat(D)
    w["head.weight"] = mat(CLASSES, D)
    w["head.bias"] = mat(CLASSES)
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=PRESETS)
    for k in KEYS:
        ap.add_argument("--" + k, type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=("f32", "f16", "bf16"), default="f32")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg = dict(PRESETS[a.preset]) if a.preset else {}
    for k in KEYS:
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    missing = [k for k in KEYS if k not in cfg]
    if missing:
        ap.error("missing " + ", ".join(missing) + " (or use --preset)")
    w = make(seed=a.seed, **cfg)
    meta = {"config": json.dumps(cfg), "format": "vit", "seed": str(a.seed)}
    save(a.out, w, dtype=a.dtype, metadata=meta)
    n = sum(v.size for v in w.values())
    print(f"wrote {a.out}: {len(w)} tensors, {n} params, {a.dtype}, config {cfg}")


if __name__ == "__main__":
    main()
