"""One step of attention with a KV cache, written as Hugging Face's GPT-2 writes it and exported by
torch.onnx.export with two dynamic axes: the cache's length P (inputs past_key, past_value [4, P, 16])
and the new tokens' T (input x [T, 64]). The new keys and values are concatenated to the cache
(present_key, present_value [4, P+T, 16]: ONNX Concat along two symbolic sizes); the causal mask is
GPT-2's: rows kl - ql .. kl and columns .. kl of a lower-triangular buffer, kl = P+T and ql = T taken
by Shape (ONNX Sub of two symbolic sizes, Slice with symbolic starts and ends), filled with -1e4 by
Where; y [T, 64] is projected back. Writes
cache.onnx and, for (P, T) = (5, 3), (12, 1) and (0, 3) (no past: the first call), the inputs and
PyTorch's outputs (tests/models/onnx_cache.sh imports it with --bound P=32 --bound T=8, and with
--bound P=0 for the first call).

cache_arange.onnx is the same step with the mask written as bench/decode_peer.py writes it: key j
is visible from query i when arange(P + T)[j] <= arange(T)[i] + P (P from Shape, an element that
stands for a size), the others filled with -inf by masked_fill; its outputs are y_arange_P_T.npy
(its caches are cache.onnx's).

    /usr/bin/python3 tests/onnx/cache/make_cache.py
"""
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


class M(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.w = torch.nn.Parameter(torch.randn(64, 192) * 0.125)
        s.o = torch.nn.Parameter(torch.randn(64, 64) * 0.125)
        s.register_buffer("bias", torch.tril(torch.ones(64, 64, dtype=torch.bool)).view(1, 1, 64, 64))

    def forward(s, past_key, past_value, x):
        T = x.shape[0]
        q, k, v = (t.reshape(T, 4, 16).transpose(0, 1) for t in (x @ s.w).split(64, dim=-1))
        key = torch.cat([past_key, k], dim=1)
        value = torch.cat([past_value, v], dim=1)
        w = q @ key.transpose(1, 2) / 4.0
        ql, kl = q.size(-2), key.size(-2)
        w = torch.where(s.bias[0, :, kl - ql: kl, :kl], w, torch.tensor(-1e4))
        a = w.softmax(-1) @ value
        return a.transpose(0, 1).reshape(T, 64) @ s.o, key, value


class Arange(M):
    def forward(s, past_key, past_value, x):
        T, P = x.shape[0], past_key.shape[1]
        q, k, v = (t.reshape(T, 4, 16).transpose(0, 1) for t in (x @ s.w).split(64, dim=-1))
        key = torch.cat([past_key, k], dim=1)
        value = torch.cat([past_value, v], dim=1)
        visible = torch.arange(P + T)[None, :] <= (torch.arange(T)[:, None] + P)
        w = (q @ key.transpose(1, 2) / 4.0).masked_fill(~visible, float("-inf"))
        a = w.softmax(-1) @ value
        return a.transpose(0, 1).reshape(T, 64) @ s.o, key, value


def export(m, path):
    P, T = 3, 2
    args = (torch.zeros(4, P, 16), torch.zeros(4, P, 16), torch.zeros(T, 64))
    torch.onnx.export(m, args, path,
                      input_names=["past_key", "past_value", "x"], output_names=["y", "present_key", "present_value"],
                      dynamic_axes={"past_key": {1: "P"}, "past_value": {1: "P"}, "x": {0: "T"},
                                    "y": {0: "T"}, "present_key": {1: "PT"}, "present_value": {1: "PT"}},
                      opset_version=17)


def main():
    torch.manual_seed(0)
    m = M()
    a = Arange()
    a.load_state_dict(m.state_dict())
    export(m, os.path.join(HERE, "cache.onnx"))
    export(a, os.path.join(HERE, "cache_arange.onnx"))
    for P, T in ((5, 3), (12, 1), (0, 3)):
        ins = (torch.randn(4, P, 16), torch.randn(4, P, 16), torch.randn(T, 64))
        for name, t in zip(("past_key", "past_value", "x"), ins):
            if P or name == "x":
                np.save(os.path.join(HERE, f"{name}_{P}_{T}.npy"), t.numpy())
        with torch.no_grad():
            for name, t in zip(("y", "present_key", "present_value"), m(*ins)):
                np.save(os.path.join(HERE, f"{name}_{P}_{T}.npy"), t.numpy())
            np.save(os.path.join(HERE, f"y_arange_{P}_{T}.npy"), a(*ins)[0].numpy())


if __name__ == "__main__":
    main()
