"""PyTorch side of the decode benchmark (bench/decode.py): GPT-2 with its key/value cache.

    decode_peer.py export WEIGHTS --onnx OUT.onnx
    decode_peer.py time   WEIGHTS --past P --threads T --runs N
    decode_peer.py logits WEIGHTS TOKENS.i32 --past P --out OUT.npy
    decode_peer.py inputs WEIGHTS TOKENS.i32 --past P --dir DIR

The module, Gpt2Step, is examples/gpt2/model.py's computation (its layer_norm, gelu_tanh and the
attention's arithmetic) in float32 with the cache the way Hugging Face's GPT-2 and its ONNX export
keep it: per layer a past key and a past value [H, P, HD]; a call takes tokens [T] at positions
P..P+T-1 and the pasts, and returns the logits [T, V] and per layer the present key and value
[H, P+T, HD] (the past with this call's keys appended: a concatenation, which is what a runtime fed
this way copies at every step). Inputs in order: tokens, past_key_0, past_value_0, past_key_1, ...;
outputs: logits, present_key_0, present_value_0, ...

export: torch.onnx.export at T = 1 (a decode step), P and T symbolic ("past", "T"), opset 14.
time:   eager, torch.no_grad(), torch.set_num_threads(T), one decode step after P cached tokens whose
        pasts are random (timing does not depend on the values), a warm-up then N timed calls.
        Prints {"min_ms", "median_ms", "runs", "threads"}.
logits: the pasts of the first P tokens of TOKENS (a prefill through the same module), then the step
        for token P: its logits [V] to OUT (the agreement check against kiln's decode step).
inputs: the step's inputs for ONNX Runtime as .npy files in DIR (token P, and the pasts of the
        first P tokens), named in order 00.npy, 01.npy, ...
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402


class Gpt2Step(torch.nn.Module):
    def __init__(self, M, weights, H):
        super().__init__()
        self.M, self.H = M, H
        self.L = M.config_from_weights(weights)["L"]
        self.w = torch_models._Weights(weights)

    def forward(self, tokens, *past):
        M, W, H = self.M, self.w.dict(), self.H
        T = tokens.shape[0]
        P = past[0].shape[1]
        x = W["wte.weight"][tokens.long()] + W["wpe.weight"][P:P + T]
        D = x.shape[1]
        hd = D // H
        # query i (position P + i) sees keys 0 .. P + i
        visible = torch.arange(P + T)[None, :] <= (torch.arange(T)[:, None] + P)
        present = []
        for i in range(self.L):
            p = f"h.{i}."
            h = M.layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"])
            qkv = h @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
            q, k, v = (t.reshape(T, H, hd).transpose(0, 1) for t in qkv.split(D, dim=-1))
            k = torch.cat([past[2 * i], k], dim=1)
            v = torch.cat([past[2 * i + 1], v], dim=1)
            present += [k, v]
            s = q @ k.transpose(1, 2) / math.sqrt(hd)
            s = s.masked_fill(~visible, float("-inf")).softmax(-1)
            o = (s @ v).transpose(0, 1).reshape(T, D)
            x = x + o @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
            h = M.layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"])
            h = M.gelu_tanh(h @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
            x = x + h @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
        x = M.layer_norm(x, W["ln_f.weight"], W["ln_f.bias"])
        return (x @ W["wte.weight"].T, *present)


def build(weights_path):
    M = torch_models.load_example("gpt2")
    weights, _ = torch_models.st_load(weights_path)
    net = Gpt2Step(M, weights, torch_models._heads(weights_path, 12))
    net.eval()
    return net


def empty_past(net, P, random=False):
    D = net.w.dict()["wte.weight"].shape[1]
    shape = (net.H, P, D // net.H)
    g = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=g) if random else torch.zeros(shape) for _ in range(2 * net.L)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=("export", "time", "logits", "inputs"))
    ap.add_argument("weights")
    ap.add_argument("tokens", nargs="?")
    ap.add_argument("--onnx")
    ap.add_argument("--past", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out")
    ap.add_argument("--dir")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    net = build(a.weights)
    with torch.no_grad():
        if a.cmd == "export":
            past = empty_past(net, 4, random=True)
            tok = torch.zeros(1, dtype=torch.int32)
            names = [f"past_{kind}_{i}" for i in range(net.L) for kind in ("key", "value")]
            outs = [f"present_{kind}_{i}" for i in range(net.L) for kind in ("key", "value")]
            axes = {"tokens": {0: "T"}, "logits": {0: "T"}}
            axes.update({n: {1: "past"} for n in names})
            axes.update({n: {1: "past_T"} for n in outs})
            torch.onnx.export(net, (tok, *past), a.onnx, opset_version=14, do_constant_folding=True,
                              input_names=["tokens"] + names, output_names=["logits"] + outs,
                              dynamic_axes=axes)
            return
        if a.cmd == "time":
            past = empty_past(net, a.past, random=True)
            tok = torch.tensor([7], dtype=torch.int32)
            net(tok, *past)
            times = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                net(tok, *past)
                times.append((time.perf_counter() - t0) * 1e3)
            print(json.dumps({"min_ms": min(times), "median_ms": statistics.median(times), "runs": a.runs,
                              "threads": a.threads}))
            return
        tokens = torch.from_numpy(np.fromfile(a.tokens, dtype="<i4")[:a.past + 1].copy())
        _, *present = net(tokens[:a.past], *empty_past(net, 0))
        if a.cmd == "logits":
            logits = net(tokens[a.past:a.past + 1], *present)[0]
            np.save(a.out, logits[0].numpy())
            return
        os.makedirs(a.dir, exist_ok=True)
        for i, t in enumerate([tokens[a.past:a.past + 1]] + present):
            np.save(os.path.join(a.dir, f"{i:02d}.npy"), t.numpy())


if __name__ == "__main__":
    main()
