"""PyTorch logits of a Llama safetensors file for a token sequence: the reference of the decoders
section's agreement check (bench/decoders.py).

    /usr/bin/python3 bench/llama_reference.py WEIGHTS.safetensors TOKENS.npy OUT.npy [--float32]

Default: examples/llama/model.py's forward as it is (float64 throughout). --float32 runs the same
functions of model.py on float32 tensors (the rotary tables computed in float64 and rounded once),
for models too large for a float64 copy of their weights (TinyLlama's would be 8.8 GB). The tensors
are read one at a time from the file (bench/gguf_write.py's reader), not all copied at once.
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples", "llama"))
import gguf_write  # noqa: E402
import model  # noqa: E402  (examples/llama/model.py)


def forward32(W, tokens, cfg):
    import torch
    W = {k: torch.from_numpy(v) for k, v in model.strip_prefix(W).items()}
    H, KVH = cfg["H"], cfg["KVH"]
    eps, theta = cfg.get("EPS", 1e-5), cfg.get("THETA", 10000.0)
    tokens = torch.as_tensor(np.asarray(tokens), dtype=torch.long)
    L = 1 + max(int(k.split(".")[1]) for k in W if k.startswith("layers."))
    hd = W["layers.0.self_attn.q_proj.weight"].shape[0] // H
    cos, sin = model.rotary(tokens.shape[0], hd, theta)
    cos, sin = cos.float(), sin.float()
    x = W["embed_tokens.weight"][tokens]
    with torch.no_grad():
        for i in range(L):
            p = f"layers.{i}."
            h = model.rms_norm(x, W[p + "input_layernorm.weight"], eps)
            x = x + model.attention(h, W, p + "self_attn.", H, KVH, cos, sin)
            h = model.rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
            x = x + model.mlp(h, W, p + "mlp.")
        x = model.rms_norm(x, W["norm.weight"], eps)
        return (x @ W["lm_head.weight"].T).float().numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("tokens")
    ap.add_argument("out")
    ap.add_argument("--float32", action="store_true")
    a = ap.parse_args()
    header, meta, data = gguf_write.st_open(a.weights)
    cfg = json.loads(meta["config"])
    W = {name: gguf_write.st_tensor(header, data, name) for name in header}
    tokens = np.load(a.tokens)
    logits = forward32(W, tokens, cfg) if a.float32 else model.forward(W, tokens, cfg)
    np.save(a.out, logits.astype(np.float32))
    print(f"logits {logits.shape} ({'float32' if a.float32 else 'float64'}) -> {a.out}")


if __name__ == "__main__":
    main()
