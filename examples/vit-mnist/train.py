"""Train a small ViT on MNIST images 0..7999, evaluate on 8000..9999, write vit-mnist.safetensors.

Usage (from anywhere):  /usr/bin/python3 examples/vit-mnist/train.py [--epochs N] ...
"""
import argparse
import math
import os
import sys
import time

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine the
# default spin-waiting made 2-thread training up to 5x slower under load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
import model as M  # noqa: E402


def augment(x, gen, max_rot=10.0, max_shift=2.0, scale=(0.9, 1.1)):
    """Random affine (rotation, scale, translation in pixels) of a [B,1,28,28] batch.
    Background is 0, which is what MNIST uses."""
    B = x.shape[0]
    ang = (torch.rand(B, generator=gen) * 2 - 1) * math.radians(max_rot)
    sc = scale[0] + torch.rand(B, generator=gen) * (scale[1] - scale[0])
    sh = (torch.rand(B, 2, generator=gen) * 2 - 1) * (max_shift * 2 / 28)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, sh[:, 0]], 1),
                         torch.stack([sin, cos, sh[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--D", type=int, default=128)
    p.add_argument("--H", type=int, default=4)
    p.add_argument("--L", type=int, default=6)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min_lr", type=float, default=1e-5)
    p.add_argument("--warmup_epochs", type=float, default=1.0)
    p.add_argument("--wd", type=float, default=0.05)
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", default=os.path.join(HERE, "vit-mnist.safetensors"))
    p.add_argument("--log_every", type=int, default=0)
    p.add_argument("--bench", type=int, default=0, help="only time this many iterations")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    xtr, ytr, xte, yte = data.load_split()
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    model = M.ViT(D=a.D, H=a.H, L=a.L)
    nparams = sum(q.numel() for q in model.parameters())
    print(f"train={len(xtr)} heldout={len(xte)} config={model.config} params={nparams}",
          flush=True)

    decay = [q for n, q in model.named_parameters() if q.dim() >= 2 and "embed" not in n
             and "cls_token" not in n]
    ids = {id(q) for q in decay}
    no_decay = [q for q in model.parameters() if id(q) not in ids]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr)

    steps_per_epoch = len(xtr) // a.batch
    total = a.epochs * steps_per_epoch
    warm = int(a.warmup_epochs * steps_per_epoch)

    def lr_at(it):
        if it < warm:
            return a.lr * (it + 1) / warm
        r = (it - warm) / max(1, total - warm)
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * min(1.0, r)))

    t0 = time.time()
    it = 0
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        tot_loss, tot_ok, seen = 0.0, 0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * a.batch:(s + 1) * a.batch]
            x = augment(xtr_t[idx], gen)
            y = ytr_t[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(it)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=a.smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            it += 1
            tot_loss += loss.item() * len(y)
            tot_ok += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if a.log_every and it % a.log_every == 0:
                print(f"  it {it} loss {tot_loss / seen:.4f} acc {tot_ok / seen:.3f} "
                      f"{time.time() - t0:.0f}s", flush=True)
            if a.bench:
                print(f"it {it} loss {loss.item():.3f} {time.time() - t0:.1f}s", flush=True)
                if it >= a.bench:
                    print(f"{(time.time() - t0) / it:.3f} s/iter", flush=True)
                    return
        model.eval()
        acc, _ = M.accuracy(model, xte, yte)
        print(f"epoch {ep + 1} loss {tot_loss / seen:.4f} train_acc(aug) {tot_ok / seen:.4f} "
              f"heldout_acc {acc:.4f} {time.time() - t0:.0f}s", flush=True)
    train_time = time.time() - t0
    model.save(a.out)
    m2 = M.load(a.out)
    acc, n = M.accuracy(m2, xte, yte)
    print(f"training time {train_time:.0f}s", flush=True)
    print(f"final heldout accuracy {acc:.4f} ({n}/{len(xte)})", flush=True)


if __name__ == "__main__":
    main()
