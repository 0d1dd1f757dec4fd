"""PyTorch side of kiln's model benchmarks (run with /usr/bin/python3, Debian's python3-torch).

    torch_peer.py time   KIND WEIGHTS INPUT.npy [INPUT.npy ...] --threads T --runs N [--heads H] [--out OUT.npy]
    torch_peer.py export KIND WEIGHTS INPUT.npy [INPUT.npy ...] --onnx OUT.onnx [--heads H] [--out OUT.npy]
                         [--dynamic-axis A]

time: eager mode, torch.set_num_threads(T), torch.no_grad(), float32; one warm-up run, then N timed
runs (time.perf_counter around each forward). Prints one JSON line:
  {"min_ms": ..., "median_ms": ..., "runs": N, "threads": T, "blas": "..."}
export: torch.onnx.export of the same module (opset 14, constant folding, weights as
initializers); also writes the module's output for the inputs to --out.
Models with several inputs take one .npy file per input, in the order kiln declares them; the ONNX
inputs are named input (one input) or input0, input1, ... (several). --dynamic-axis A makes axis A of
every input and of the output a symbolic size named T in the ONNX file, so one export (traced at a
small size) serves every T.
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
    ap.add_argument("input", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--onnx")
    ap.add_argument("--out")
    ap.add_argument("--dynamic-axis", type=int)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    net, xs = torch_models.build(a.kind, a.weights, a.input, a.heads)
    with torch.no_grad():
        if a.cmd == "export":
            y = net(*xs) if a.out else None
            names = ["input"] if len(xs) == 1 else [f"input{i}" for i in range(len(xs))]
            dyn = None
            if a.dynamic_axis is not None:
                dyn = {name: {a.dynamic_axis: "T"} for name in names + ["output"]}
            torch.onnx.export(net, xs, a.onnx, opset_version=14, do_constant_folding=True,
                              input_names=names, output_names=["output"], dynamic_axes=dyn)
            if a.out:
                np.save(a.out, y.numpy().astype(np.float32))
            print(json.dumps({"onnx": a.onnx, "bytes": os.path.getsize(a.onnx)}))
            return
        y = net(*xs)  # warm-up
        times = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            y = net(*xs)
            times.append((time.perf_counter() - t0) * 1e3)
    if a.out:
        np.save(a.out, y.numpy().astype(np.float32))
    print(json.dumps({"min_ms": min(times), "median_ms": statistics.median(times), "runs": a.runs,
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "blas": loaded_blas()}))


if __name__ == "__main__":
    main()
