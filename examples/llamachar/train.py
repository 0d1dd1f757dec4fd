"""Train the Llama-style character model on tinyshakespeare and write llamachar.safetensors.

Usage (from anywhere):  /usr/bin/python3 examples/llamachar/train.py [--iters N] ...
The loop, data and options are charlm's (../charlm/train.py), with --KVH and --F added.
"""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as M  # noqa: E402

# charlm's train.py by path: its own `import model` must find charlm's model.py, so load it as a
# module of its own with charlm's folder first on the path while it loads
sys.path.insert(0, os.path.join(HERE, "..", "charlm"))
_spec = importlib.util.spec_from_file_location("charlm_train", os.path.join(HERE, "..", "charlm", "train.py"))
base = importlib.util.module_from_spec(_spec)
_saved = sys.modules.pop("model")
_spec.loader.exec_module(base)
sys.modules["model"] = _saved
sys.path.pop(0)


def build_llama(a, V):
    model = M.Llama(V, a.D, a.H, a.KVH, a.F, a.L, a.ctx)
    return model, f"D={a.D} H={a.H} KVH={a.KVH} F={a.F} L={a.L} CTX={a.ctx}", lambda n, p: p.dim() >= 2


if __name__ == "__main__":
    base.main(M, build_llama, extra=(("--KVH", 2), ("--F", 512)), defaults={"H": 6}, out="llamachar.safetensors")
