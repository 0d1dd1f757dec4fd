"""Train vit-mnist56: vit-mnist's ViT on MNIST upsampled to 56 x 56, patch 4 (14 x 14 = 196 patches
+ [CLS] = 197 tokens, the token count of ViT-B/16 at 224 x 224). Images 0..7999 train, 8000..9999 are
held out. Writes vit-mnist56.safetensors and prints the held-out accuracy.

Usage (from anywhere):  /usr/bin/python3 examples/vit-mnist56/train.py [--epochs N] ...

The model, data reader and augmentation are examples/vit-mnist's (loaded by path); only the image
size changes. Upsampling is nearest-neighbour 2x (every pixel repeated 2 x 2), so that the C tool that
feeds the compiled program (tests/mnist `images2x`) gives it bit-identical inputs. Augmentation is
vit-mnist's random affine applied to the 56 x 56 image (translation +-4 pixels there = +-2 at 28).

--init FILE starts from a trained vit-mnist (28 x 28, 7 x 7 patches): the blocks, [CLS] token, final
norm and head are copied, the position embedding of the 49 patches is resized 7 x 7 -> 14 x 14
(bicubic, as timm does when fine-tuning at a higher resolution), and the patch embedding starts fresh
(a 4 x 4 patch here covers 2 x 2 of the original pixels, not 4 x 4). See README.md for what was run.
"""
import argparse
import importlib.util
import math
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
VM = os.path.join(HERE, "..", "vit-mnist")


def _load(name):
    spec = importlib.util.spec_from_file_location("vm_" + name, os.path.join(VM, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


data = _load("data")
M = _load("model")
T = _load("train")  # augment()


def up2(x):
    """float32 numpy [N, 1, 28, 28] -> [N, 1, 56, 56], each pixel repeated 2 x 2."""
    return np.ascontiguousarray(x.repeat(2, axis=2).repeat(2, axis=3))


def load_split56():
    xtr, ytr, xte, yte = data.load_split()
    return up2(xtr), ytr, up2(xte), yte


def init_from(model, path):
    src, _ = M.st.load(path)
    dst = model.state_dict()
    n_copied = 0
    for k, v in src.items():
        if k.startswith("patch_embed."):
            continue
        if k == "pos_embed":
            cls, grid = v[:, :1], v[:, 1:]
            g = int(round(math.sqrt(grid.shape[1])))
            G = int(round(math.sqrt(dst[k].shape[1] - 1)))
            t = torch.from_numpy(grid).reshape(1, g, g, -1).permute(0, 3, 1, 2)
            t = F.interpolate(t, size=(G, G), mode="bicubic", align_corners=False)
            t = t.permute(0, 2, 3, 1).reshape(1, G * G, -1)
            dst[k] = torch.cat([torch.from_numpy(cls), t], dim=1)
        else:
            dst[k] = torch.from_numpy(v)
        n_copied += 1
    model.load_state_dict(dst)
    print(f"init from {path}: {n_copied} tensors (patch embedding fresh)", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min_lr", type=float, default=1e-5)
    p.add_argument("--warmup_epochs", type=float, default=1.0)
    p.add_argument("--wd", type=float, default=0.05)
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--init", default="", help="a trained vit-mnist .safetensors to start from")
    p.add_argument("--out", default=os.path.join(HERE, "vit-mnist56.safetensors"))
    p.add_argument("--log_every", type=int, default=0)
    p.add_argument("--bench", type=int, default=0, help="only time this many iterations")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    xtr, ytr, xte, yte = load_split56()
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    model = M.ViT(D=128, H=4, L=6, P=4, IMG=56)
    if a.init:
        init_from(model, a.init)
    nparams = sum(q.numel() for q in model.parameters())
    print(f"train={len(xtr)} heldout={len(xte)} config={model.config} params={nparams} "
          f"args={vars(a)}", flush=True)

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
            x = T.augment(xtr_t[idx], gen)  # shift +-2/28 of the width: +-4 pixels at 56
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
        model.save(a.out)  # after every epoch, so that a cut-off run leaves its last epoch
    train_time = time.time() - t0
    m2 = M.load(a.out)
    acc, n = M.accuracy(m2, xte, yte)
    print(f"training time {train_time:.0f}s", flush=True)
    print(f"final heldout accuracy {acc:.4f} ({n}/{len(xte)})", flush=True)


if __name__ == "__main__":
    main()
