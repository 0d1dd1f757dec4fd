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


# Note on speed: Debian's torch 1.13 uses reference (netlib) BLAS, so plain
# matmul/bmm run at ~3 GFLOPS. Convolutions go through oneDNN and are 20-40x
# faster, so the fast path below writes every matrix product as a 1-wide conv1d
# over a channel-first [B, C, T] activation layout. `forward_ref` is the plain
# (Hugging Face GPT-2) formulation of the same computation, used for checking.


class Conv1D(nn.Module):
    """GPT-2 Conv1D: weight [in, out], y = x @ W + b."""

    def __init__(self, n_in, n_out, std=0.02):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * std)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def cf(self, x):  # x [B, in, T] -> [B, out, T]
        return F.conv1d(x, self.weight.t().unsqueeze(2), self.bias)

    def ref(self, x):  # x [..., in] -> [..., out]
        return x @ self.weight + self.bias


def ln_cf(ln, x):  # LayerNorm over the channel dim of [B, C, T]
    return F.layer_norm(x.transpose(1, 2), ln.normalized_shape, ln.weight, ln.bias,
                        ln.eps).transpose(1, 2)


def gelu(x):
    return F.gelu(x, approximate="tanh")


class Attention(nn.Module):
    def __init__(self, D, H, L):
        super().__init__()
        self.H = H
        self.c_attn = Conv1D(D, 3 * D)
        self.c_proj = Conv1D(D, D, std=0.02 / math.sqrt(2 * L))

    def cf(self, x):  # [B, D, T]
        B, D, T = x.shape
        H, hd = self.H, D // self.H
        G = B * H
        qkv = self.c_attn.cf(x)  # [B, 3D, T]; channel = part*D + head*hd + d
        q = qkv[:, :D].reshape(1, G * hd, T)                       # [1, (g,d), t]
        k = qkv[:, D:2 * D].reshape(G, hd, T).transpose(1, 2).reshape(G * T, hd, 1)
        v = qkv[:, 2 * D:].reshape(G * hd, T, 1)                   # [(g,d), s, 1]
        s = F.conv1d(q, k, groups=G).view(G, T, T)                 # s[g, key, query]
        s = s * (1.0 / math.sqrt(hd))
        keep = torch.ones(T, T, dtype=torch.bool, device=x.device).triu()  # key <= query
        s = s.masked_fill(~keep, float("-inf"))
        a = F.softmax(s, dim=1)
        y = F.conv1d(a.view(1, G * T, T), v, groups=G).view(B, D, T)
        return self.c_proj.cf(y)

    def ref(self, x):  # [B, T, D]
        B, T, D = x.shape
        H, hd = self.H, D // self.H
        q, k, v = self.c_attn.ref(x).split(D, dim=2)
        q = q.view(B, T, H, hd).transpose(1, 2)
        k = k.view(B, T, H, hd).transpose(1, 2)
        v = v.view(B, T, H, hd).transpose(1, 2)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        s = s.masked_fill(~mask, float("-inf"))
        y = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        return self.c_proj.ref(y)


class MLP(nn.Module):
    def __init__(self, D, L):
        super().__init__()
        self.c_fc = Conv1D(D, 4 * D)
        self.c_proj = Conv1D(4 * D, D, std=0.02 / math.sqrt(2 * L))

    def cf(self, x):
        return self.c_proj.cf(gelu(self.c_fc.cf(x)))

    def ref(self, x):
        return self.c_proj.ref(gelu(self.c_fc.ref(x)))


class Block(nn.Module):
    def __init__(self, D, H, L, dropout):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D, eps=1e-5)
        self.attn = Attention(D, H, L)
        self.ln_2 = nn.LayerNorm(D, eps=1e-5)
        self.mlp = MLP(D, L)
        self.drop = nn.Dropout(dropout)

    def cf(self, x):
        x = x + self.drop(self.attn.cf(ln_cf(self.ln_1, x)))
        x = x + self.drop(self.mlp.cf(ln_cf(self.ln_2, x)))
        return x

    def ref(self, x):
        x = x + self.attn.ref(self.ln_1(x))
        x = x + self.mlp.ref(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, V, D, H, L, CTX, dropout=0.0):
        super().__init__()
        self.config = dict(V=V, D=D, H=H, L=L, CTX=CTX)
        self.wte = nn.Parameter(torch.randn(V, D) * 0.02)
        self.wpe = nn.Parameter(torch.randn(CTX, D) * 0.01)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([Block(D, H, L, dropout) for _ in range(L)])
        self.ln_f = nn.LayerNorm(D, eps=1e-5)

    def logits_cf(self, idx):
        """idx int64 [B, T] -> logits [B, V, T] (fast path)."""
        T = idx.shape[1]
        x = self.drop(self.wte[idx] + self.wpe[:T]).transpose(1, 2)
        for blk in self.h:
            x = blk.cf(x)
        return F.conv1d(ln_cf(self.ln_f, x), self.wte.unsqueeze(2))

    def forward(self, idx):
        """idx int64 [B, T] -> logits float32 [B, T, V]."""
        return self.logits_cf(idx).transpose(1, 2)

    def forward_ref(self, idx):
        """Plain Hugging Face GPT-2 formulation (slow here); same result as forward."""
        T = idx.shape[1]
        x = self.wte[idx] + self.wpe[:T]
        for blk in self.h:
            x = blk.ref(x)
        return self.ln_f(x) @ self.wte.t()

    def save(self, path, vocab):
        # Hugging Face's GPT-2 names: the embeddings are modules there, so their tensors are wte.weight
        # and wpe.weight (the same names gpt2.kiln reads)
        tensors = {HF_NAMES.get(k, k): v.detach().cpu().numpy() for k, v in self.state_dict().items()}
        meta = {"vocab": vocab, "config": json.dumps(self.config)}
        st.save(path, tensors, meta)


HF_NAMES = {"wte": "wte.weight", "wpe": "wpe.weight"}


def load(path):
    """Returns (model in eval mode, vocab string)."""
    tensors, meta = st.load(path)
    cfg = json.loads(meta["config"])
    m = GPT(cfg["V"], cfg["D"], cfg["H"], cfg["L"], cfg["CTX"])
    back = {v: k for k, v in HF_NAMES.items()}
    m.load_state_dict({back.get(k, k): torch.from_numpy(v) for k, v in tensors.items()})
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
        total += F.cross_entropy(model.logits_cf(x), y, reduction="sum").item()
        count += y.numel()
    return total / count, count
