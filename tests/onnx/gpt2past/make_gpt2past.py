"""A small GPT-2 with past keys and values, as bench/torch_models.py's Gpt2F32 computes it and Hugging
Face's GPT-2 caches it, exported by torch.onnx.export with two dynamic axes: the cache's length P
(inputs past_key_L, past_value_L [H, P, 16] for each layer L) and the new tokens' T (input tokens
[T]). Each layer concatenates its new keys and values to the cache (outputs present_key_L,
present_value_L [H, P+T, 16]); positions are wpe[P:P+T]; the causal mask is GPT-2's rows kl - ql .. kl
of a lower-triangular buffer. Random weights (V=48, D=32, H=2, L=2, CTX=32: a small file). Writes
gpt2past.onnx and, for (P, T) = (5, 3) and (12, 1), the inputs and PyTorch's outputs
(tests/models/onnx_gpt2past.sh imports it with --bound P=24 --bound T=8).

    /usr/bin/python3 tests/onnx/gpt2past/make_gpt2past.py
"""
import math
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
V, D, H, L, CTX = 48, 32, 2, 2, 32


def layer_norm(x, w, b):
    return torch.nn.functional.layer_norm(x, (D,), w, b, 1e-5)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class Gpt2Past(torch.nn.Module):
    def __init__(s):
        super().__init__()
        r = lambda *shape: torch.nn.Parameter(torch.randn(*shape) * 0.2)
        s.wte, s.wpe = r(V, D), r(CTX, D)
        s.ln = torch.nn.ParameterList([r(D) for _ in range(4 * L + 2)])
        s.attn_w = torch.nn.ParameterList([r(D, 3 * D) for _ in range(L)])
        s.attn_b = torch.nn.ParameterList([r(3 * D) for _ in range(L)])
        s.proj_w = torch.nn.ParameterList([r(D, D) for _ in range(L)])
        s.proj_b = torch.nn.ParameterList([r(D) for _ in range(L)])
        s.fc_w = torch.nn.ParameterList([r(D, 4 * D) for _ in range(L)])
        s.fc_b = torch.nn.ParameterList([r(4 * D) for _ in range(L)])
        s.out_w = torch.nn.ParameterList([r(4 * D, D) for _ in range(L)])
        s.out_b = torch.nn.ParameterList([r(D) for _ in range(L)])
        s.register_buffer("bias", torch.tril(torch.ones(CTX, CTX, dtype=torch.bool)).view(1, CTX, CTX))

    def forward(s, tokens, *past):
        T, P = tokens.shape[0], past[0].shape[1]
        x = s.wte[tokens] + s.wpe[P:P + T]
        present = []
        for i in range(L):
            h = layer_norm(x, s.ln[4 * i], s.ln[4 * i + 1])
            q, k, v = (t.reshape(T, H, D // H).transpose(0, 1) for t in (h @ s.attn_w[i] + s.attn_b[i]).split(D, -1))
            key = torch.cat([past[2 * i], k], dim=1)
            value = torch.cat([past[2 * i + 1], v], dim=1)
            present += [key, value]
            w = q @ key.transpose(1, 2) / math.sqrt(D // H)
            ql, kl = q.size(-2), key.size(-2)
            w = torch.where(s.bias[:, kl - ql: kl, :kl], w, torch.tensor(-1e4))
            a = (w.softmax(-1) @ value).transpose(0, 1).reshape(T, D)
            x = x + a @ s.proj_w[i] + s.proj_b[i]
            h = layer_norm(x, s.ln[4 * i + 2], s.ln[4 * i + 3])
            x = x + gelu_tanh(h @ s.fc_w[i] + s.fc_b[i]) @ s.out_w[i] + s.out_b[i]
        x = layer_norm(x, s.ln[4 * L], s.ln[4 * L + 1])
        return (x @ s.wte.T, *present)


def main():
    torch.manual_seed(0)
    m = Gpt2Past().eval()
    past_names = [f"past_{kv}_{i}" for i in range(L) for kv in ("key", "value")]
    present_names = [f"present_{kv}_{i}" for i in range(L) for kv in ("key", "value")]
    args = (torch.zeros(2, dtype=torch.long), *[torch.zeros(H, 3, D // H) for _ in past_names])
    axes = {"tokens": {0: "T"}, "logits": {0: "T"}}
    axes.update({n: {1: "P"} for n in past_names})
    axes.update({n: {1: "PT"} for n in present_names})
    torch.onnx.export(m, args, os.path.join(HERE, "gpt2past.onnx"), input_names=["tokens", *past_names],
                      output_names=["logits", *present_names], dynamic_axes=axes, opset_version=17)
    for P, T in ((5, 3), (12, 1)):
        tokens = torch.randint(0, V, (T,))
        past = [torch.randn(H, P, D // H) for _ in past_names]
        np.save(os.path.join(HERE, f"tokens_{P}_{T}.npy"), tokens.numpy())
        for name, t in zip(past_names, past):
            np.save(os.path.join(HERE, f"{name}_{P}_{T}.npy"), t.numpy())
        with torch.no_grad():
            for name, t in zip(["logits", *present_names], m(tokens, *past)):
                np.save(os.path.join(HERE, f"{name}_{P}_{T}.npy"), t.numpy())


if __name__ == "__main__":
    main()
