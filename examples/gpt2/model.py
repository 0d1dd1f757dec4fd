"""GPT-2 forward pass in PyTorch, written directly against a dict of tensors
that use Hugging Face GPT-2 parameter names (Conv1D layout: y = x @ W + b).

    logits = forward(weights, tokens, n_head)   # tokens int [T] -> float32 [T, V]

All math is done in float64 (weights are cast up), the result is float32.
"""
import math

import numpy as np
import torch


def config_from_weights(w):
    """Infer V, D, CTX, L from tensor shapes (H must come from metadata)."""
    V, D = w["wte.weight"].shape
    L = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("h."))
    return dict(V=V, D=D, CTX=w["wpe.weight"].shape[0], L=L)


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def attention(x, W, p, H):
    T, D = x.shape
    hd = D // H
    qkv = x @ W[p + "c_attn.weight"] + W[p + "c_attn.bias"]        # [T, 3D]
    q, k, v = (t.reshape(T, H, hd).transpose(0, 1) for t in qkv.split(D, dim=-1))
    s = q @ k.transpose(1, 2) / math.sqrt(hd)                       # [H, T, T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    s = s.masked_fill(~causal, float("-inf")).softmax(-1)
    o = (s @ v).transpose(0, 1).reshape(T, D)                       # heads contiguous
    return o @ W[p + "c_proj.weight"] + W[p + "c_proj.bias"]


def forward(weights, tokens, n_head):
    W = {k: torch.as_tensor(np.asarray(v)).double() for k, v in weights.items()}
    tokens = torch.as_tensor(np.asarray(tokens), dtype=torch.long)
    T = tokens.shape[0]
    L = config_from_weights(weights)["L"]
    assert T <= W["wpe.weight"].shape[0], "sequence longer than CTX"
    x = W["wte.weight"][tokens] + W["wpe.weight"][:T]
    for i in range(L):
        p = f"h.{i}."
        x = x + attention(layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"]),
                          W, p + "attn.", n_head)
        h = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"])
        h = gelu_tanh(h @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
        x = x + h @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    x = layer_norm(x, W["ln_f.weight"], W["ln_f.bias"])
    return (x @ W["wte.weight"].T).float().numpy()
