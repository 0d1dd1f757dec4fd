"""Small Vision Transformer for MNIST with timm tensor names and layouts.

Same computation as timm's VisionTransformer (class token, learned absolute
position embedding over all 50 tokens, pre-LN blocks, LayerNorm eps 1e-6,
exact erf GELU, head on the final-normed class token).

Speed note: Debian's torch 1.13 uses reference (netlib) BLAS, so matmul/bmm are
very slow; convolutions go through oneDNN. The fast path (`forward`) therefore
writes each matrix product as a 1-wide conv1d on a channel-first [B, C, T]
layout. `forward_ref` is the plain timm-style formulation, used for checking.
"""
import importlib.util
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
# shared safetensors writer/reader, loaded by path (no sys.path change, so this
# directory's `model`/`train` never clash with examples/charlm's)
_spec = importlib.util.spec_from_file_location("kiln_st", os.path.join(HERE, "..", "charlm", "st.py"))
st = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(st)


def lin_cf(lin, x):  # nn.Linear on channel-first x [B, in, T] -> [B, out, T]
    return F.conv1d(x, lin.weight.unsqueeze(2), lin.bias)


def ln_cf(ln, x):  # LayerNorm over the channel dim of [B, C, T]
    return F.layer_norm(x.transpose(1, 2), ln.normalized_shape, ln.weight, ln.bias,
                        ln.eps).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, D, H):
        super().__init__()
        self.H = H
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)

    def cf(self, x):  # [B, D, T]
        B, D, T = x.shape
        H, hd = self.H, D // self.H
        G = B * H
        qkv = lin_cf(self.qkv, x)  # [B, 3D, T]; channel = part*D + head*hd + d
        q = qkv[:, :D].reshape(1, G * hd, T)
        k = qkv[:, D:2 * D].reshape(G, hd, T).transpose(1, 2).reshape(G * T, hd, 1)
        v = qkv[:, 2 * D:].reshape(G * hd, T, 1)
        s = F.conv1d(q, k, groups=G).view(G, T, T) * (hd ** -0.5)  # s[g, key, query]
        a = F.softmax(s, dim=1)
        y = F.conv1d(a.view(1, G * T, T), v, groups=G).view(B, D, T)
        return lin_cf(self.proj, y)

    def ref(self, x):  # [B, T, D]
        B, T, D = x.shape
        H, hd = self.H, D // self.H
        qkv = self.qkv(x).reshape(B, T, 3, H, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = F.softmax((q @ k.transpose(-2, -1)) * (hd ** -0.5), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, T, D))


class Mlp(nn.Module):
    def __init__(self, D):
        super().__init__()
        self.fc1 = nn.Linear(D, 4 * D)
        self.fc2 = nn.Linear(4 * D, D)

    def cf(self, x):
        return lin_cf(self.fc2, F.gelu(lin_cf(self.fc1, x)))

    def ref(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, D, H):
        super().__init__()
        self.norm1 = nn.LayerNorm(D, eps=1e-6)
        self.attn = Attention(D, H)
        self.norm2 = nn.LayerNorm(D, eps=1e-6)
        self.mlp = Mlp(D)

    def cf(self, x):
        x = x + self.attn.cf(ln_cf(self.norm1, x))
        return x + self.mlp.cf(ln_cf(self.norm2, x))

    def ref(self, x):
        x = x + self.attn.ref(self.norm1(x))
        return x + self.mlp.ref(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, D, P):
        super().__init__()
        self.proj = nn.Conv2d(1, D, P, stride=P)


class ViT(nn.Module):
    def __init__(self, D=128, H=4, L=6, P=4, IMG=28, CLASSES=10):
        super().__init__()
        self.config = dict(D=D, H=H, L=L, P=P, IMG=IMG, CLASSES=CLASSES)
        n = (IMG // P) ** 2
        self.patch_embed = PatchEmbed(D, P)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, D) * 0.02)
        self.blocks = nn.ModuleList([Block(D, H) for _ in range(L)])
        self.norm = nn.LayerNorm(D, eps=1e-6)
        self.head = nn.Linear(D, CLASSES)
        self._init()

    def _init(self):
        # Linear / conv layers keep PyTorch's default init. timm's (trunc-normal 0.02
        # everywhere, pos_embed std 0.02) trained far slower on 8000 MNIST images: the
        # tiny position embedding left the model nearly position-blind for hundreds of
        # steps. A larger pos_embed (std 0.2) fixes that.
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.2)

    def forward(self, x):
        """x float32 [B, 1, 28, 28] (pixel / 255) -> logits [B, CLASSES] (fast path)."""
        B = x.shape[0]
        t = self.patch_embed.proj(x).flatten(2)  # [B, D, 49], patches in row-major order
        t = torch.cat([self.cls_token.transpose(1, 2).expand(B, -1, -1), t], dim=2)
        t = t + self.pos_embed.transpose(1, 2)
        for blk in self.blocks:
            t = blk.cf(t)
        c = self.norm(t[:, :, 0])
        return self.head(c)

    def forward_ref(self, x):
        """Plain timm formulation (slow here); same result as forward."""
        B = x.shape[0]
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)  # [B, 49, D]
        t = torch.cat([self.cls_token.expand(B, -1, -1), t], dim=1) + self.pos_embed
        for blk in self.blocks:
            t = blk.ref(t)
        return self.head(self.norm(t)[:, 0])

    def save(self, path):
        tensors = {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}
        st.save(path, tensors, {"config": json.dumps(self.config)})


def load(path):
    """Returns the model (eval mode) from a safetensors file."""
    tensors, meta = st.load(path)
    m = ViT(**json.loads(meta["config"]))
    m.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    m.eval()
    return m


@torch.no_grad()
def accuracy(model, x, y, batch=500):
    """x float32 numpy [N,1,28,28], y int64 numpy [N] -> (fraction correct, n correct)."""
    correct = 0
    for i in range(0, len(x), batch):
        logits = model(torch.from_numpy(x[i:i + batch]))
        correct += int((logits.argmax(1).numpy() == y[i:i + batch]).sum())
    return correct / len(x), correct
