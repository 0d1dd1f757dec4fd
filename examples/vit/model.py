"""ViT forward pass in PyTorch, written directly against a dict of tensors that
use timm parameter names (nn.Linear layout: y = x @ W.T + b).

    logits = forward(weights, image, n_head)   # image [3, IMG, IMG] -> float32 [CLASSES]

Pre-LN blocks, exact (erf) GELU, layernorm eps 1e-6, CLS-token head after the
final norm. All math is float64 (weights are cast up), the result is float32.
"""
import math

import numpy as np
import torch


def config_from_weights(w):
    """Infer D, P, L, CLASSES, IMG from tensor shapes (H must come from metadata)."""
    D, _, P, _ = w["patch_embed.proj.weight"].shape
    L = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("blocks."))
    N = w["pos_embed"].shape[1] - 1
    return dict(D=D, P=P, L=L, CLASSES=w["head.weight"].shape[0], IMG=math.isqrt(N) * P)


def layer_norm(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def linear(x, W, name):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def attention(x, W, p, H):
    T, D = x.shape
    hd = D // H
    qkv = linear(x, W, p + "qkv")                                   # [T, 3D]
    q, k, v = (t.reshape(T, H, hd).transpose(0, 1) for t in qkv.split(D, dim=-1))
    s = (q @ k.transpose(1, 2) / math.sqrt(hd)).softmax(-1)         # [H, T, T]
    o = (s @ v).transpose(0, 1).reshape(T, D)                       # heads contiguous
    return linear(o, W, p + "proj")


def patchify(img, P):
    """[C, IMG, IMG] -> [N, C*P*P], patches row-major, each flattened (c, py, px)
    to match the conv weight [D, C, P, P] flattened to [D, C*P*P]."""
    C, Hi, Wi = img.shape
    x = img.reshape(C, Hi // P, P, Wi // P, P).permute(1, 3, 0, 2, 4)
    return x.reshape((Hi // P) * (Wi // P), C * P * P)


def forward(weights, image, n_head):
    W = {k: torch.as_tensor(np.asarray(v)).double() for k, v in weights.items()}
    img = torch.as_tensor(np.asarray(image)).double()
    cfg = config_from_weights(weights)
    D, P = cfg["D"], cfg["P"]
    assert img.shape == (3, cfg["IMG"], cfg["IMG"]), img.shape
    # stride-P conv == matmul over flattened patches
    x = patchify(img, P) @ W["patch_embed.proj.weight"].reshape(D, -1).T
    x = x + W["patch_embed.proj.bias"]
    x = torch.cat([W["cls_token"].reshape(1, D), x]) + W["pos_embed"].reshape(-1, D)
    for i in range(cfg["L"]):
        p = f"blocks.{i}."
        x = x + attention(layer_norm(x, W[p + "norm1.weight"], W[p + "norm1.bias"]),
                          W, p + "attn.", n_head)
        h = layer_norm(x, W[p + "norm2.weight"], W[p + "norm2.bias"])
        x = x + linear(gelu(linear(h, W, p + "mlp.fc1")), W, p + "mlp.fc2")
    x = layer_norm(x, W["norm.weight"], W["norm.bias"])
    return linear(x[0], W, "head").float().numpy()
