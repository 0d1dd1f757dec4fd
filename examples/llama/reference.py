"""Run the PyTorch Llama reference on a token file and save float32 logits.

    /usr/bin/python3 reference.py WEIGHTS.safetensors TOKENS.npy OUT_LOGITS.npy

TOKENS.npy: int array [T]. OUT_LOGITS.npy: float32 [T, V]. The head counts H and
KVH, the RMSNorm epsilon EPS and the rotary base THETA are read from
__metadata__["config"] (make_weights.py writes them). F16/BF16 weights are
widened exactly, and all math is float64.

The committed test data were made with
    /usr/bin/python3 -c "import numpy as np; r = np.random.default_rng(1); \
        [np.save(f'tests/models/llama/tokens_{t}.npy', r.integers(0, 128, t).astype(np.int32)) for t in (1, 7, 64)]"
    for t in 1 7 64; do /usr/bin/python3 examples/llama/reference.py examples/llama/llama-tiny.safetensors \
        tests/models/llama/tokens_$t.npy tests/models/llama/logits_$t.npy; done
"""
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
sys.path.insert(0, HERE)
from safetensors_io import load  # noqa: E402
import model  # noqa: E402


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    weights, meta = load(sys.argv[1])
    cfg = json.loads(meta["config"])
    tokens = np.load(sys.argv[2])
    t0 = time.perf_counter()
    logits = model.forward(weights, tokens, cfg)
    dt = time.perf_counter() - t0
    np.save(sys.argv[3], logits.astype(np.float32))
    print(f"T={len(tokens)} logits {logits.shape} in {dt:.3f}s -> {sys.argv[3]}")


if __name__ == "__main__":
    main()
