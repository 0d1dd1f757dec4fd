"""PyTorch side of kiln's model benchmarks (run with /usr/bin/python3, Debian's python3-torch).

    torch_peer.py time   KIND WEIGHTS INPUT.npy --threads T --runs N [--heads H] [--out OUT.npy]
    torch_peer.py export KIND WEIGHTS INPUT.npy --onnx OUT.onnx [--heads H] [--out OUT.npy]

time: eager mode, torch.set_num_threads(T), torch.no_grad(), float32; one warm-up run, then N timed
runs (time.perf_counter around each forward). Prints one JSON line:
  {"min_ms": ..., "median_ms": ..., "runs": N, "threads": T, "blas": "..."}
export: torch.onnx.export of the same module (opset 14, constant folding, weights as
initializers); also writes the module's output for INPUT.npy to --out.
The modules are described in torch_models.py.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402


def loaded_blas():
    """The BLAS library this process mapped (torch's matmul goes through libblas.so.3)."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if "blas" in os.path.basename(p) or "openblas" in p:
                    libs.add(os.path.realpath(p))
    except OSError:
        pass
    return ", ".join(sorted(libs)) or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=("time", "export"))
    ap.add_argument("kind")
    ap.add_argument("weights")
    ap.add_argument("input")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--onnx")
    ap.add_argument("--out")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    net, x = torch_models.build(a.kind, a.weights, a.input, a.heads)
    with torch.no_grad():
        if a.cmd == "export":
            y = net(x)
            torch.onnx.export(net, (x,), a.onnx, opset_version=14, do_constant_folding=True,
                              input_names=["input"], output_names=["output"])
            if a.out:
                np.save(a.out, y.numpy().astype(np.float32))
            print(json.dumps({"onnx": a.onnx, "bytes": os.path.getsize(a.onnx)}))
            return
        y = net(x)  # warm-up
        times = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            y = net(x)
            times.append((time.perf_counter() - t0) * 1e3)
    if a.out:
        np.save(a.out, y.numpy().astype(np.float32))
    print(json.dumps({"min_ms": min(times), "median_ms": statistics.median(times), "runs": a.runs,
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "blas": loaded_blas()}))


if __name__ == "__main__":
    main()
