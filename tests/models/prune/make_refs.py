#!/usr/bin/python3
"""make_refs.py: PyTorch references of token merging and pruning on vit-mnist, for tests/models/prune_tokens.sh.

Run with Debian's PyTorch:   /usr/bin/python3 tests/models/prune/make_refs.py
Writes tests/models/prune/<case>.npy: the logits (float32 [4, 10]) of the four held-out images of
examples/vit-mnist/ref/images_4.npy under each method, computed in float64 by the methods as their
reference implementations define them, rewritten here from those definitions:

  ToMe (facebookresearch/ToMe): tome/patch/timm.py's ToMeBlock and ToMeAttention around timm's ViT
  (the merge between the attention's residual add and the MLP; the metric k.mean(1), the keys averaged
  over heads; proportional attention, log(size) added to the scores, from the layer after the first
  merge on), tome/merge.py's bipartite_soft_matching (class token protected) and merge_wavg, and
  tome/utils.py's parse_r for the schedule.
  PiToMe (hchautran/PiToMe): algo/pitome/patch/timm.py's PiToMeBlock (the merge after the attention's
  residual add, metric k.mean(1), the attention called without the sizes) and deit.py's apply_patch (one
  keep ratio for every layer, margins 0.75 - 0.75 i / L, pitome_bsm in the first ceil(L / 2) layers),
  algo/pitome/merge.py's pitome_vision, pitome, pitome_bsm and merge_wavg.
  EViT (youweiliang/evit, evit.py): at the chosen blocks, the [CLS] query's attention averaged over the
  heads, topk(ceil(keep_rate * (N - 1)), sorted) of the other tokens kept after [CLS] in that order,
  the rest fused into one token, their sum weighted by that attention (fuse_token=True).

argsort and topk are PyTorch's, as in the references; kiln breaks ties by the lower index, and the
inputs here have none.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")
sys.path.insert(0, os.path.join(ROOT, "examples", "vit-mnist"))
import model as M  # noqa: E402


def parse_r(num_layers, r):
    inflect = 0
    if isinstance(r, list):
        return list(r) + [0] * (num_layers - len(r))
    if isinstance(r, tuple):
        r, inflect = r
    min_val = int(r * (1.0 - inflect))
    max_val = 2 * r - min_val
    step = (max_val - min_val) / (num_layers - 1)
    return [int(min_val + step * i) for i in range(num_layers)]


def bipartite_soft_matching(metric, r, class_token):
    t = metric.shape[1]
    r = min(r, (t - int(class_token)) // 2)
    if r <= 0:
        return None
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[..., ::2, :], metric[..., 1::2, :]
    scores = a @ b.transpose(-1, -2)
    if class_token:
        scores[..., 0, :] = -math.inf
    node_max, node_idx = scores.max(dim=-1)
    edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
    unm_idx = edge_idx[..., r:, :]
    src_idx = edge_idx[..., :r, :]
    dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)
    if class_token:
        unm_idx = unm_idx.sort(dim=1)[0]

    def merge(x, mode):
        src, dst = x[..., ::2, :], x[..., 1::2, :]
        n, t1, c = src.shape
        unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
        src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
        dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
        return torch.cat([unm, dst], dim=1)
    return merge


def merge_wavg(merge, x, size):
    if size is None:
        size = torch.ones_like(x[..., 0, None])
    x = merge(x * size, "sum")
    size = merge(size, "sum")
    return x / size, size


def attention(blk, x, size):
    """timm's attention with ToMe's proportional attention; returns (out, keys averaged over heads, probs)."""
    at = blk.attn
    B, N, C = x.shape
    H = at.H
    qkv = at.qkv(x).reshape(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    s = (q @ k.transpose(-2, -1)) * ((C // H) ** -0.5)
    if size is not None:
        s = s + size.log()[:, None, None, :, 0]
    p = s.softmax(dim=-1)
    out = at.proj((p @ v).transpose(1, 2).reshape(B, N, C))
    return out, k.mean(1), p


def embed(m, img):
    B = img.shape[0]
    t = m.patch_embed.proj(img).flatten(2).transpose(1, 2)
    return torch.cat([m.cls_token.expand(B, -1, -1), t], dim=1) + m.pos_embed


def head(m, t):
    return m.head(m.norm(t)[:, 0])


def tome_forward(m, img, r, prop_attn=True):
    t = embed(m, img)
    rs = parse_r(len(m.blocks), r)
    size = None
    for blk, rl in zip(m.blocks, rs):
        a, metric, _ = attention(blk, blk.norm1(t), size if prop_attn else None)
        t = t + a
        if rl > 0:
            merge = bipartite_soft_matching(metric, rl, True)
            if merge is not None:
                t, size = merge_wavg(merge, t, size)
        t = t + blk.mlp.ref(blk.norm2(t))
    return head(m, t)


def pitome_vision(metric, ratio, margin, class_token, use_bsm_pitome):
    if class_token:
        metric = metric[:, 1:, :]
    B, T, C = metric.shape
    if ratio >= 1.0:
        return None
    r = math.floor(T - T * ratio)
    metric = F.normalize(metric, p=2, dim=-1)
    sim = metric @ metric.transpose(-1, -2)
    energy_score = F.elu((sim - margin), alpha=1.0).mean(dim=-1)
    indices = torch.argsort(energy_score, descending=True)
    batch_idx = torch.arange(B).unsqueeze_(1)
    if use_bsm_pitome:
        a_idx, b_idx = indices[..., ::2], indices[..., 1::2]
        scores = sim.gather(dim=-1, index=b_idx.unsqueeze(-2).expand(B, T, b_idx.shape[-1]))
        scores = scores.gather(dim=-2, index=a_idx.unsqueeze(-1).expand(B, a_idx.shape[-1], b_idx.shape[-1]))
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
        unm_idx, src_idx = edge_idx[..., r:, :], edge_idx[..., :r, :]
        dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)

        def merge(x, mode="mean"):
            if class_token:
                x_cls, x = x[:, 0, :].unsqueeze(1), x[:, 1:, :]
            src, dst = x[batch_idx, a_idx, :], x[batch_idx, b_idx, :]
            n, t1, c = src.shape
            unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
            src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
            dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
            return torch.cat([x_cls, unm, dst], dim=1) if class_token else torch.cat([unm, dst], dim=1)
        return merge
    merge_idx, protected_idx = indices[..., :2 * r], indices[..., 2 * r:]
    a_idx, b_idx = merge_idx[..., ::2], merge_idx[..., 1::2]
    scores = sim.gather(dim=-1, index=b_idx.unsqueeze(-2).expand(B, T, r))
    scores = scores.gather(dim=-2, index=a_idx.unsqueeze(-1).expand(B, r, r))
    _, dst_idx = scores.max(dim=-1)

    def merge(x, mode="mean"):
        if class_token:
            x_cls, x = x[:, 0, :].unsqueeze(1), x[:, 1:, :]
        B, T, C = x.shape
        protected = x[batch_idx, protected_idx, :]
        src, dst = x[batch_idx, a_idx, :], x[batch_idx, b_idx, :]
        dst = dst.scatter_reduce(-2, dst_idx.unsqueeze(2).expand(B, r, C), src, reduce=mode)
        return torch.cat([x_cls, protected, dst], dim=1) if class_token else torch.cat([protected, dst], dim=1)
    return merge


def pitome_forward(m, img, ratio, prop_attn=False):
    t = embed(m, img)
    L = len(m.blocks)
    margins = [.75 - .75 * (i / L) for i in range(L)]
    nbsm = math.ceil(L * 0.5)
    size = None
    for i, blk in enumerate(m.blocks):
        a, metric, _ = attention(blk, blk.norm1(t), size if prop_attn else None)
        t = t + a
        merge = pitome_vision(metric, ratio, margins[i], True, i < nbsm)
        if merge is not None:
            t, size = merge_wavg(merge, t, size)
        t = t + blk.mlp.ref(blk.norm2(t))
    return head(m, t)


def evit_forward(m, img, keep_rate, layers):
    t = embed(m, img)
    for i, blk in enumerate(m.blocks):
        B, N, C = t.shape
        a, _, p = attention(blk, blk.norm1(t), None)
        t = t + a
        if i in layers:
            left = math.ceil(keep_rate * (N - 1))
            if left < N - 1:
                cls_attn = p[:, :, 0, 1:].mean(dim=1)
                _, idx = torch.topk(cls_attn, left, dim=1, largest=True, sorted=True)
                non_cls = t[:, 1:]
                x_others = torch.gather(non_cls, 1, idx.unsqueeze(-1).expand(-1, -1, C))
                keep = torch.zeros(B, N - 1, dtype=torch.bool)
                keep.scatter_(1, idx, True)
                compl = torch.stack([torch.nonzero(~keep[b])[:, 0] for b in range(B)])
                non_topk = torch.gather(non_cls, 1, compl.unsqueeze(-1).expand(-1, -1, C))
                w = torch.gather(cls_attn, 1, compl)
                extra = torch.sum(non_topk * w.unsqueeze(-1), dim=1, keepdim=True)
                t = torch.cat([t[:, 0:1], x_others, extra], dim=1)
        t = t + blk.mlp.ref(blk.norm2(t))
    return head(m, t)


CASES = {
    # name: (function, its arguments); the kiln option that must match is in prune_tokens.sh
    "tome_r8": (tome_forward, (8,)),                          # tome:r=8
    "tome_r5_noprop": (tome_forward, (5, False)),             # tome:r=5,prop=off
    "tome_decreasing": (tome_forward, ((6, -1.0),)),          # tome:r=6,schedule=decreasing
    "tome_list": (tome_forward, ([3, 0, 9, 1],)),             # tome:r=3,0,9,1
    "evit_07": (evit_forward, (0.7, (1, 3, 4))),              # evit:keep=0.7,layers=1,3,4
    "pitome_09": (pitome_forward, (0.9,)),                    # pitome:ratio=0.9
    "pitome_08_prop": (pitome_forward, (0.8, True)),          # pitome:ratio=0.8,prop=on
}


def main():
    m = M.load(os.path.join(ROOT, "examples", "vit-mnist", "vit-mnist.safetensors")).double()
    img = torch.from_numpy(np.load(os.path.join(ROOT, "examples", "vit-mnist", "ref", "images_4.npy"))).double()
    with torch.no_grad():
        for name, (fn, args) in CASES.items():
            logits = fn(m, img, *args)
            np.save(os.path.join(HERE, f"{name}.npy"), logits.numpy().astype(np.float32))
            print(name, logits.argmax(1).tolist())


if __name__ == "__main__":
    main()
