"""Train the Llama-style character model on tinyshakespeare and write llamachar.safetensors.

Usage (from anywhere):  /usr/bin/python3 examples/llamachar/train.py [--iters N] ...
The loop, data and options are charlm's (../charlm/train.py), with --KVH and --F added.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as M  # noqa: E402

base = M.charlm_script("charlm_train", "train.py")  # charlm's loop, data and options


def build_llama(a, V):
    model = M.Llama(V, a.D, a.H, a.KVH, a.F, a.L, a.ctx)
    return model, f"D={a.D} H={a.H} KVH={a.KVH} F={a.F} L={a.L} CTX={a.ctx}", lambda n, p: p.dim() >= 2


if __name__ == "__main__":
    base.main(M, build_llama, extra=(("--KVH", 2), ("--F", 512)), defaults={"H": 6}, out="llamachar.safetensors")
