"""Write random Llama weights (Hugging Face names) to a safetensors file.

    /usr/bin/python3 make_weights.py --preset tiny --out llama-tiny.safetensors
    /usr/bin/python3 make_weights.py --V 128 --D 64 --H 4 --KVH 2 --F 172 --L 2 --CTX 64 --out w.safetensors
    options: --preset tiny|tinyllama  --V --D --H --KVH --F --L --CTX  --seed N
             --dtype f32|f16|bf16  --strip-model-prefix

Names are Hugging Face's LlamaForCausalLM ones: model.embed_tokens.weight [V, D],
model.layers.N.{input_layernorm,post_attention_layernorm}.weight [D],
model.layers.N.self_attn.{q,k,v,o}_proj.weight ([H*HD, D], [KVH*HD, D], [KVH*HD, D], [D, H*HD]),
model.layers.N.mlp.{gate,up,down}_proj.weight ([F, D], [F, D], [D, F]), model.norm.weight [D],
lm_head.weight [V, D]. --strip-model-prefix drops the leading "model." (for tools that want the
names without it); lm_head.weight keeps its name.

The scales are chosen so that the model is not trivially smooth: embeddings N(0, 1), projections
N(0, 1/fan_in) (q and k twice that standard deviation, so attention is peaked rather than uniform),
norm weights 1 + N(0, 0.1). The config (JSON with V, D, H, KVH, HD, F, L, CTX, EPS, THETA) goes
into __metadata__["config"].
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from safetensors_io import save  # noqa: E402

KEYS = ("V", "D", "H", "KVH", "F", "L", "CTX")
PRESETS = {"tiny": dict(V=128, D=64, H=4, KVH=2, F=172, L=2, CTX=64),
           "tinyllama": dict(V=32000, D=2048, H=32, KVH=4, F=5632, L=22, CTX=2048)}
EPS, THETA = 1e-5, 10000.0  # as in llama.kiln


def make(V, D, H, KVH, F, L, CTX, seed=0):
    assert D % H == 0 and H % KVH == 0
    HD = D // H
    rng = np.random.default_rng(seed)

    def mat(*shape, std):
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    def proj(n_out, n_in, gain=1.0):
        return mat(n_out, n_in, std=gain / np.sqrt(n_in))

    w = {"model.embed_tokens.weight": mat(V, D, std=1.0)}
    for i in range(L):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + mat(D, std=0.1)
        w[p + "self_attn.q_proj.weight"] = proj(H * HD, D, 2.0)
        w[p + "self_attn.k_proj.weight"] = proj(KVH * HD, D, 2.0)
        w[p + "self_attn.v_proj.weight"] = proj(KVH * HD, D)
        w[p + "self_attn.o_proj.weight"] = proj(D, H * HD)
        w[p + "post_attention_layernorm.weight"] = 1 + mat(D, std=0.1)
        w[p + "mlp.gate_proj.weight"] = proj(F, D)
        w[p + "mlp.up_proj.weight"] = proj(F, D)
        w[p + "mlp.down_proj.weight"] = proj(D, F)
    w["model.norm.weight"] = 1 + mat(D, std=0.1)
    w["lm_head.weight"] = proj(V, D)
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=PRESETS)
    for k in KEYS:
        ap.add_argument("--" + k, type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=("f32", "f16", "bf16"), default="f32")
    ap.add_argument("--strip-model-prefix", action="store_true",
                    help='store "model.X" as "X" (the names llama.kiln can spell)')
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
    if a.strip_model_prefix:
        w = {k[len("model."):] if k.startswith("model.") else k: v for k, v in w.items()}
    full = dict(cfg, HD=cfg["D"] // cfg["H"], EPS=EPS, THETA=THETA)
    meta = {"config": json.dumps(full), "format": "llama", "seed": str(a.seed)}
    save(a.out, w, dtype=a.dtype, metadata=meta)
    n = sum(v.size for v in w.values())
    print(f"wrote {a.out}: {len(w)} tensors, {n} params, {a.dtype}, config {full}")


if __name__ == "__main__":
    main()
