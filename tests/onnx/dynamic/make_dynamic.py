"""A causal self-attention layer with GPT-2's shape code, exported by torch.onnx.export with a dynamic
token axis T (opset 17): Shape -> Gather -> Unsqueeze -> Concat -> Reshape, Slice of the position table
up to T, Range(0, T) for positions, ConstantOfShape(T, T) -> Trilu -> Expand(4, T, T) for the causal
mask. Writes dynamic.onnx and, for T = 10 and
37, the tokens and PyTorch's logits (tests/models/onnx_dynamic.sh imports it with --bound T=64).

    /usr/bin/python3 tests/onnx/dynamic/make_dynamic.py
"""
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


class M(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.wte = torch.nn.Parameter(torch.randn(96, 64))
        s.wpe = torch.nn.Parameter(torch.randn(64, 64))
        s.w = torch.nn.Parameter(torch.randn(64, 192))

    def forward(s, tokens):
        T = tokens.shape[0]
        x = s.wte[tokens] + s.wpe[:T] * 0.5 + s.wpe[torch.arange(T)] * 0.5
        qkv = x @ s.w
        q, k, v = (t.reshape(T, 4, 16).transpose(0, 1) for t in qkv.split(64, dim=-1))
        sc = q @ k.transpose(1, 2) / 4.0
        causal = torch.ones(T, T, dtype=torch.bool).tril().unsqueeze(0).expand(4, T, T)
        sc = sc.masked_fill(~causal, float("-inf")).softmax(-1)
        return (sc @ v).transpose(0, 1).reshape(T, 64) @ s.wte.T


def main():
    torch.manual_seed(0)
    m = M()
    torch.onnx.export(m, (torch.zeros(16, dtype=torch.long),), os.path.join(HERE, "dynamic.onnx"),
                      input_names=["tokens"], output_names=["logits"],
                      dynamic_axes={"tokens": {0: "T"}, "logits": {0: "T"}}, opset_version=17)
    for T in (10, 37):
        t = torch.randint(0, 96, (T,))
        np.save(os.path.join(HERE, f"tokens_{T}.npy"), t.numpy())
        with torch.no_grad():
            np.save(os.path.join(HERE, f"logits_{T}.npy"), m(t).numpy())


if __name__ == "__main__":
    main()
