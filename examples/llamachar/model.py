"""A Llama-style character model in PyTorch: RMSNorm, rotary position embeddings (Hugging Face's
rotate_half layout), grouped-query attention, SiLU-gated MLP, untied head, no biases.

Its weights use Hugging Face's LlamaForCausalLM names (model.embed_tokens.weight,
model.layers.N.self_attn.q_proj.weight, ..., model.norm.weight, lm_head.weight), so
examples/llama/llama.kiln compiles it with -D sizes (see llamachar.kiln). Data, vocabulary, split and the
held-out measure are charlm's (../charlm/model.py: load_text, heldout_nll).
"""
import importlib.util
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "charlm"))
import st  # noqa: E402

# charlm's data, vocabulary, split and held-out measure, from its model.py loaded by path (this
# folder's model.py has the same module name)
_spec = importlib.util.spec_from_file_location("charlm_model", os.path.join(HERE, "..", "charlm", "model.py"))
_charlm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_charlm)
load_text = _charlm.load_text
heldout_nll = _charlm.heldout_nll


def charlm_script(name, filename):
    """charlm's FILENAME (train.py, make_refs.py) loaded as module NAME. Its own `import model` must
    find charlm's model.py, not this folder's: charlm's folder goes first on the path and this
    module leaves sys.modules["model"] while it loads."""
    charlm = os.path.join(HERE, "..", "charlm")
    sys.path.insert(0, charlm)
    spec = importlib.util.spec_from_file_location(name, os.path.join(charlm, filename))
    mod = importlib.util.module_from_spec(spec)
    saved = sys.modules.pop("model", None)
    try:
        spec.loader.exec_module(mod)
    finally:
        if saved is not None:
            sys.modules["model"] = saved
        sys.path.pop(0)
    return mod


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotary(T, hd, theta=10000.0, device=None):
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float32, device=device) / hd)
    ang = torch.outer(torch.arange(T, dtype=torch.float32, device=device), inv)
    ang = torch.cat((ang, ang), dim=-1)
    return ang.cos(), ang.sin()


class Attention(nn.Module):
    def __init__(self, D, H, KVH):
        super().__init__()
        self.H, self.KVH, self.hd = H, KVH, D // H
        self.q_proj = nn.Linear(D, H * self.hd, bias=False)
        self.k_proj = nn.Linear(D, KVH * self.hd, bias=False)
        self.v_proj = nn.Linear(D, KVH * self.hd, bias=False)
        self.o_proj = nn.Linear(H * self.hd, D, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.H, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.KVH, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.KVH, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.H // self.KVH
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        o = s.masked_fill(~causal, float("-inf")).softmax(-1) @ v
        return self.o_proj(o.transpose(1, 2).reshape(B, T, self.H * self.hd))


class MLP(nn.Module):
    def __init__(self, D, Fh):
        super().__init__()
        self.gate_proj = nn.Linear(D, Fh, bias=False)
        self.up_proj = nn.Linear(D, Fh, bias=False)
        self.down_proj = nn.Linear(Fh, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, D, H, KVH, Fh):
        super().__init__()
        self.input_layernorm = RMSNorm(D)
        self.self_attn = Attention(D, H, KVH)
        self.post_attention_layernorm = RMSNorm(D)
        self.mlp = MLP(D, Fh)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, V, D, H, KVH, Fh, L, CTX):
        super().__init__()
        self.config = dict(V=V, D=D, H=H, KVH=KVH, F=Fh, L=L, CTX=CTX)
        self.embed_tokens = nn.Embedding(V, D)
        self.layers = nn.ModuleList([Layer(D, H, KVH, Fh) for _ in range(L)])
        self.norm = RMSNorm(D)
        self.lm_head = nn.Linear(D, V, bias=False)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx):
        """idx [B, T] -> logits [B, T, V]"""
        T = idx.shape[1]
        cos, sin = rotary(T, self.layers[0].self_attn.hd, device=idx.device)
        x = self.embed_tokens(idx)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.norm(x))

    def logits_cf(self, idx):
        """[B, V, T], the layout cross_entropy wants"""
        return self.forward(idx).transpose(1, 2)

    def save(self, path, vocab):
        """Hugging Face names: everything but lm_head under "model."."""
        t = {}
        for k, v in self.state_dict().items():
            t[k if k.startswith("lm_head") else "model." + k] = v.detach().cpu().numpy()
        st.save(path, t, {"vocab": vocab, "config": json.dumps(self.config)})


def load(path):
    """Returns (model in eval mode, vocab string)."""
    t, meta = st.load(path)
    cfg = json.loads(meta["config"])
    m = Llama(cfg["V"], cfg["D"], cfg["H"], cfg["KVH"], cfg["F"], cfg["L"], cfg["CTX"])
    m.load_state_dict({k[len("model."):] if k.startswith("model.") else k: torch.from_numpy(v) for k, v in t.items()})
    m.eval()
    return m, meta["vocab"]
