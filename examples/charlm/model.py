"""Character-level GPT-2 (same computation as Hugging Face GPT2LMHeadModel).

Linear layers are stored in GPT-2 "Conv1D" layout: weight [in, out], y = x @ W + b,
so parameter names/shapes match the safetensors file one to one.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "shared", "data", "tinyshakespeare.txt")


class Conv1D(nn.Module):
    def __init__(self, n_in, n_out, std=0.02):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * std)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(
            *x.shape[:-1], self.weight.shape[1])


class Attention(nn.Module):
    def __init__(self, D, H, ctx, L, dropout):
        super().__init__()
        self.H = H
        self.c_attn = Conv1D(D, 3 * D)
        self.c_proj = Conv1D(D, D, std=0.02 / math.sqrt(2 * L))
        self.drop = nn.Dropout(dropout)
        self.register_buffer("mask", torch.tril(torch.ones(ctx, ctx, dtype=torch.bool)),
                             persistent=False)

    def forward(self, x):
        B, T, D = x.shape
        hd = D // self.H
        q, k, v = self.c_attn(x).split(D, dim=2)
        q = q.view(B, T, self.H, hd).transpose(1, 2)
        k = k.view(B, T, self.H, hd).transpose(1, 2)
        v = v.view(B, T, self.H, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))
        att = self.drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        return self.drop(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, D, L, dropout):
        super().__init__()
        self.c_fc = Conv1D(D, 4 * D)
        self.c_proj = Conv1D(4 * D, D, std=0.02 / math.sqrt(2 * L))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, D, H, ctx, L, dropout):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D, eps=1e-5)
        self.attn = Attention(D, H, ctx, L, dropout)
        self.ln_2 = nn.LayerNorm(D, eps=1e-5)
        self.mlp = MLP(D, L, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, V, D, H, L, CTX, dropout=0.0):
        super().__init__()
        self.config = dict(V=V, D=D, H=H, L=L, CTX=CTX)
        self.wte = nn.Parameter(torch.randn(V, D) * 0.02)
        self.wpe = nn.Parameter(torch.randn(CTX, D) * 0.01)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([Block(D, H, CTX, L, dropout) for _ in range(L)])
        self.ln_f = nn.LayerNorm(D, eps=1e-5)

    def forward(self, idx):
        """idx: int64 [B, T] -> logits float32 [B, T, V]."""
        T = idx.shape[1]
        x = self.drop(self.wte[idx] + self.wpe[:T])
        for blk in self.h:
            x = blk(x)
        return self.ln_f(x) @ self.wte.t()

    def save(self, path, vocab):
        tensors = {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}
        meta = {"vocab": vocab, "config": json.dumps(self.config)}
        st.save(path, tensors, meta)


def load(path):
    """Returns (model in eval mode, vocab string)."""
    tensors, meta = st.load(path)
    cfg = json.loads(meta["config"])
    m = GPT(cfg["V"], cfg["D"], cfg["H"], cfg["L"], cfg["CTX"])
    m.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    m.eval()
    return m, meta["vocab"]


def load_text(path=DATA):
    """Returns (text, vocab string, train ids int64 array, held-out ids int64 array)."""
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    vocab = "".join(sorted(set(text)))
    stoi = {c: i for i, c in enumerate(vocab)}
    ids = np.array([stoi[c] for c in text], dtype=np.int64)
    n = int(0.9 * len(ids))
    return text, vocab, ids[:n], ids[n:]


def encode(s, vocab):
    stoi = {c: i for i, c in enumerate(vocab)}
    return np.array([stoi[c] for c in s], dtype=np.int64)


@torch.no_grad()
def heldout_nll(model, val, ctx=256, batch=16):
    """Mean NLL (nats/char) on non-overlapping windows: window w (w = 0, 1, ...)
    feeds val[w*ctx : w*ctx+ctx] and predicts val[w*ctx+1 : w*ctx+ctx+1]; only
    windows with all ctx+1 characters inside val are used (trailing remainder dropped)."""
    nwin = (len(val) - 1) // ctx
    total, count = 0.0, 0
    for s in range(0, nwin, batch):
        ws = range(s, min(nwin, s + batch))
        x = torch.from_numpy(np.stack([val[w * ctx:w * ctx + ctx] for w in ws]))
        y = torch.from_numpy(np.stack([val[w * ctx + 1:w * ctx + ctx + 1] for w in ws]))
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                 reduction="sum").item()
        count += y.numel()
    return total / count, count
