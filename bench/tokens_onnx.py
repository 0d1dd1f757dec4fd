"""The batched ViT that bench/tokens.py times ONNX Runtime on (run with /usr/bin/python3).

    tokens_onnx.py WEIGHTS INPUT.npy --onnx OUT.onnx --out OUT.npy

WEIGHTS: a ViT in timm's names with its config in __metadata__ (examples/vit/make_weights.py's, such
as ViT-B/16's); INPUT.npy: f32[B, C, IMG, IMG]. The module is examples/vit-mnist's ViT (timm's
formulation, `forward_ref`, with a batch axis) with the patch embedding made for C channels; it is
what examples/vit-mnist56/vit-mnist56.kiln computes at the same constants. torch.onnx.export (opset
14, constant folding, weights as initializers, the batch fixed at INPUT's); the module's output for
INPUT goes to --out, to check ONNX Runtime's and kiln's against. Prints one JSON line.
"""
import argparse
import importlib.util
import json
import os

import numpy as np
import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def load_vit_mnist():
    path = os.path.join(ROOT, "examples", "vit-mnist", "model.py")
    spec = importlib.util.spec_from_file_location("kiln_example_vit_mnist", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Plain(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_ref(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("input")
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(2)
    M = load_vit_mnist()
    tensors, meta = M.st.load(a.weights)
    cfg = json.loads(meta["config"])
    net = M.ViT(**cfg)
    C = tensors["patch_embed.proj.weight"].shape[1]
    net.patch_embed.proj = torch.nn.Conv2d(C, cfg["D"], cfg["P"], stride=cfg["P"])
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
                         for k, v in tensors.items()})
    net.eval()
    x = torch.from_numpy(np.load(a.input))
    mod = Plain(net)
    with torch.no_grad():
        y = mod(x)
        torch.onnx.export(mod, (x,), a.onnx, opset_version=14, do_constant_folding=True,
                          input_names=["input"], output_names=["output"])
    np.save(a.out, y.numpy().astype(np.float32))
    print(json.dumps({"onnx": a.onnx, "bytes": os.path.getsize(a.onnx)}))


if __name__ == "__main__":
    main()
