"""Run the PyTorch ViT reference on one image and save float32 logits.

    /usr/bin/python3 reference.py WEIGHTS.safetensors IMAGE.npy OUT_LOGITS.npy

IMAGE.npy: float array [3, IMG, IMG] (no batch). OUT_LOGITS.npy: float32
[CLASSES]. The head count H is read from __metadata__["config"]. All math is
float64.
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
    H = json.loads(meta["config"])["H"]
    image = np.load(sys.argv[2])
    t0 = time.perf_counter()
    logits = model.forward(weights, image, H)
    dt = time.perf_counter() - t0
    np.save(sys.argv[3], logits.astype(np.float32))
    print(f"image {image.shape} -> logits {logits.shape} in {dt:.3f}s -> {sys.argv[3]}")


if __name__ == "__main__":
    main()
