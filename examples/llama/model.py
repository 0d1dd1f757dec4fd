"""Llama forward pass in PyTorch, written directly against a dict of tensors with
Hugging Face LlamaForCausalLM names (nn.Linear layout, y = x @ W.T, no biases).

    logits = forward(weights, tokens, cfg)   # tokens int [T] -> float32 [T, V]

cfg holds H and KVH (head counts, which the shapes alone do not fix), and
optionally EPS (RMSNorm epsilon, default 1e-5) and THETA (rotary base, default
10000). Names may carry Hugging Face's "model." prefix or not (llama.kiln reads
files without it). All math is done in float64; the result is float32.

This follows Hugging Face's modeling_llama, written out independently of kiln's
model file: repeat_kv copies each key/value head for its group of query heads,
and the rotary embedding uses rotate_half on the two halves of each head.
"""
import numpy as np
import torch


def strip_prefix(weights):
    return {k[len("model."):] if k.startswith("model.") else k: v for k, v in weights.items()}


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(var + eps) * w


def rotary(T, hd, theta):
    inv_freq = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)   # [hd/2]
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)            # [T, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)                                        # [T, hd]
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    """[KVH, T, hd] -> [KVH * n_rep, T, hd]: head h of the result is head h // n_rep of x."""
    return x.repeat_interleave(n_rep, dim=0)


def attention(x, W, p, H, KVH, cos, sin):
    T, _ = x.shape
    hd = W[p + "q_proj.weight"].shape[0] // H
    q = (x @ W[p + "q_proj.weight"].T).view(T, H, hd).transpose(0, 1)      # [H, T, hd]
    k = (x @ W[p + "k_proj.weight"].T).view(T, KVH, hd).transpose(0, 1)    # [KVH, T, hd]
    v = (x @ W[p + "v_proj.weight"].T).view(T, KVH, hd).transpose(0, 1)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k, v = repeat_kv(k, H // KVH), repeat_kv(v, H // KVH)                  # [H, T, hd]
    s = (q @ k.transpose(1, 2)) / np.sqrt(hd)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    s = s.masked_fill(~causal, float("-inf")).softmax(-1)
    o = (s @ v).transpose(0, 1).reshape(T, H * hd)
    return o @ W[p + "o_proj.weight"].T


def mlp(x, W, p):
    g = x @ W[p + "gate_proj.weight"].T
    u = x @ W[p + "up_proj.weight"].T
    return (torch.nn.functional.silu(g) * u) @ W[p + "down_proj.weight"].T


def forward(weights, tokens, cfg):
    W = {k: torch.as_tensor(np.asarray(v)).double() for k, v in strip_prefix(weights).items()}
    H, KVH = cfg["H"], cfg["KVH"]
    eps, theta = cfg.get("EPS", 1e-5), cfg.get("THETA", 10000.0)
    tokens = torch.as_tensor(np.asarray(tokens), dtype=torch.long)
    T = tokens.shape[0]
    L = 1 + max(int(k.split(".")[1]) for k in W if k.startswith("layers."))
    hd = W["layers.0.self_attn.q_proj.weight"].shape[0] // H
    cos, sin = rotary(T, hd, theta)
    x = W["embed_tokens.weight"][tokens]
    for i in range(L):
        p = f"layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        x = x + attention(h, W, p + "self_attn.", H, KVH, cos, sin)
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        x = x + mlp(h, W, p + "mlp.")
    x = rms_norm(x, W["norm.weight"], eps)
    return (x @ W["lm_head.weight"].T).float().numpy()
