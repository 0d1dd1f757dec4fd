"""The PyTorch peers of kiln's model benchmarks, built from the examples' own model.py files.

    module, example_inputs = build(kind, weights_path, input_paths)

kinds:
  vit     examples/vit/model.py: its forward() casts everything to float64 and converts the weights
          dict on every call, so VitF32 runs the same computation in float32 with the weights held
          once as buffers: the body of model.forward() with model.py's own patchify, layer_norm,
          attention, linear and gelu. Input: image f32[3, IMG, IMG] -> logits f32[CLASSES].
  gpt2    examples/gpt2/model.py, likewise (model.attention, model.layer_norm, model.gelu_tanh).
          Input: tokens i32[T] -> logits f32[T, V].
  charlm  examples/charlm/model.py: the nn.Module GPT from load(), run through its forward_ref, the
          plain Hugging Face formulation (batch of one): its forward writes every product as a conv1d
          over a channel-first layout, a workaround for Debian's reference BLAS that also made an
          ONNX graph no runtime would meet in practice (per-head products through Conv).
          Input: tokens i32[T] -> logits f32[T, V].
  vit-mnist  examples/vit-mnist/model.py: the nn.Module ViT from load(); its forward_ref (timm's
          formulation; forward is the conv1d workaround, as for charlm). Input: the
          image with or without the batch dimension, as kiln's model declares it.
  attention  no example and no weights (WEIGHTS is ignored): y = softmax(q @ k^T / sqrt(d)) @ v
          over the last two axes, non-causal, written out as matmul, divide, softmax, matmul (torch
          1.13 has no scaled_dot_product_attention). Inputs: q, k, v f32[H, T, d] (three files) ->
          y f32[H, T, d]. The kernel of bench/harness.py's attention section.

Every module takes exactly kiln's inputs (same dtypes and shapes, in the order kiln declares them)
and returns kiln's output, so the same .npy files feed kiln, ONNX Runtime and PyTorch and the outputs
can be compared.
"""
import importlib.util
import json
import math
import os
import sys

import numpy as np
import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "examples", "common"))
from safetensors_io import load as st_load  # noqa: E402


def load_example(name):
    """Imports examples/NAME/model.py under a unique module name."""
    path = os.path.join(ROOT, "examples", name, "model.py")
    spec = importlib.util.spec_from_file_location("kiln_example_" + name.replace("-", "_"), path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))  # for the example's own sibling imports
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.pop(0)
    return mod


class _Weights(torch.nn.Module):
    """Holds a safetensors dict as float32 buffers; W(name) returns one."""

    def __init__(self, weights):
        super().__init__()
        self.names = {}
        for i, (k, v) in enumerate(sorted(weights.items())):
            self.register_buffer(f"w{i}", torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)))
            self.names[k] = f"w{i}"

    def dict(self):
        return {k: getattr(self, b) for k, b in self.names.items()}


class VitF32(torch.nn.Module):
    def __init__(self, M, weights, H):
        super().__init__()
        self.M, self.H = M, H
        self.cfg = M.config_from_weights(weights)
        self.w = _Weights(weights)

    def forward(self, image):
        M, W, cfg = self.M, self.w.dict(), self.cfg
        D, P = cfg["D"], cfg["P"]
        x = M.patchify(image, P) @ W["patch_embed.proj.weight"].reshape(D, -1).T
        x = x + W["patch_embed.proj.bias"]
        x = torch.cat([W["cls_token"].reshape(1, D), x]) + W["pos_embed"].reshape(-1, D)
        for i in range(cfg["L"]):
            p = f"blocks.{i}."
            x = x + M.attention(M.layer_norm(x, W[p + "norm1.weight"], W[p + "norm1.bias"]),
                                W, p + "attn.", self.H)
            h = M.layer_norm(x, W[p + "norm2.weight"], W[p + "norm2.bias"])
            x = x + M.linear(M.gelu(M.linear(h, W, p + "mlp.fc1")), W, p + "mlp.fc2")
        x = M.layer_norm(x, W["norm.weight"], W["norm.bias"])
        return M.linear(x[0], W, "head")


class Gpt2F32(torch.nn.Module):
    def __init__(self, M, weights, H):
        super().__init__()
        self.M, self.H = M, H
        self.L = M.config_from_weights(weights)["L"]
        self.w = _Weights(weights)

    def forward(self, tokens):
        M, W = self.M, self.w.dict()
        T = tokens.shape[0]
        x = W["wte.weight"][tokens.long()] + W["wpe.weight"][:T]
        for i in range(self.L):
            p = f"h.{i}."
            x = x + M.attention(M.layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"]),
                                W, p + "attn.", self.H)
            h = M.layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"])
            h = M.gelu_tanh(h @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
            x = x + h @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
        x = M.layer_norm(x, W["ln_f.weight"], W["ln_f.bias"])
        return x @ W["wte.weight"].T


class PlainForward(torch.nn.Module):
    """An example's module run through its forward_ref (the plain formulation) rather than forward."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_ref(x)


class Batch1(torch.nn.Module):
    """Adds a batch dimension of one to the input (and the given dtype), drops it from the output."""

    def __init__(self, net, add_batch, dtype=None):
        super().__init__()
        self.net, self.add_batch, self.dtype = net, add_batch, dtype

    def forward(self, x):
        if self.dtype is not None:
            x = x.to(self.dtype)
        if self.add_batch:
            return self.net(x[None])[0]
        return self.net(x)


class Attention(torch.nn.Module):
    """softmax(q @ k^T / sqrt(d), axis=-1) @ v, the T x T scores materialised as in every model.py
    here. The scale is a Python float, so the ONNX export has one constant Div."""

    def __init__(self, d):
        super().__init__()
        self.scale = math.sqrt(d)

    def forward(self, q, k, v):
        return torch.softmax(q @ k.transpose(-2, -1) / self.scale, dim=-1) @ v


def _heads(weights_path, default):
    with open(weights_path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    cfg = json.loads(header.get("__metadata__", {}).get("config", "{}"))
    return int(cfg.get("H", default))


def build(kind, weights_path, input_paths, heads=None):
    """Returns (module in eval mode, tuple of example input tensors exactly as kiln takes them).
    input_paths: one .npy path per input of the model."""
    if isinstance(input_paths, str):
        input_paths = [input_paths]
    xs = tuple(torch.from_numpy(np.load(p)) for p in input_paths)
    if kind == "attention":
        if len(xs) != 3:
            raise ValueError(f"{kind} takes three inputs (q, k, v), not {len(xs)}")
        net = Attention(xs[0].shape[-1])
        net.eval()
        return net, xs
    if len(xs) != 1:
        raise ValueError(f"{kind} takes one input, not {len(xs)}")
    x = xs[0]
    if kind in ("vit", "gpt2"):
        M = load_example(kind)
        weights, _ = st_load(weights_path)
        H = heads or _heads(weights_path, 12)
        net = (VitF32 if kind == "vit" else Gpt2F32)(M, weights, H)
    elif kind == "charlm":
        M = load_example("charlm")
        model, _vocab = M.load(weights_path)
        net = Batch1(PlainForward(model), add_batch=True, dtype=torch.long)
    elif kind == "vit-mnist":
        M = load_example("vit-mnist")
        model = M.load(weights_path)
        net = Batch1(PlainForward(model), add_batch=(x.dim() == 3))
    else:
        raise ValueError("unknown model kind " + kind)
    net.eval()
    return net, xs
