"""Train the character-level GPT-2 on tinyshakespeare and write charlm.safetensors.

Usage (from anywhere):  /usr/bin/python3 examples/charlm/train.py [--iters N] ...
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
import model as M  # noqa: E402


def build_gpt(a, V):
    """charlm's model; the weight decay skips 1-D parameters and the position table wpe."""
    model = M.GPT(V, a.D, a.H, a.L, a.ctx, dropout=a.dropout)
    return model, f"D={a.D} H={a.H} L={a.L} CTX={a.ctx}", lambda n, p: p.dim() >= 2 and n != "wpe"


def main(mod=M, build=build_gpt, extra=(), defaults=None, out="charlm.safetensors"):
    """The training loop, shared with ../llamachar/train.py: mod gives load_text, heldout_nll and
    load; build(args, V) gives (model, config text, decay(name, param)); extra adds (flag, default)
    integer options; defaults replaces option defaults."""
    p = argparse.ArgumentParser()
    p.add_argument("--iters", type=int, default=2500)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--D", type=int, default=192)
    p.add_argument("--H", type=int, default=4)
    p.add_argument("--L", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min_lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--wd", type=float, default=0.1)
    p.add_argument("--eval_every", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", default=os.path.join(HERE, out))
    p.add_argument("--bench", type=int, default=0, help="only time this many iterations")
    for flag, value in extra:
        p.add_argument(flag, type=int, default=value)
    p.set_defaults(**(defaults or {}))
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    _, vocab, train, val = mod.load_text()
    V = len(vocab)
    print(f"V={V} train={len(train)} heldout={len(val)}", flush=True)
    model, config, decays = build(a, V)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"config {config} params={nparams}", flush=True)

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n, p)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.99))

    def lr_at(it):
        if it < a.warmup:
            return a.lr * (it + 1) / a.warmup
        r = (it - a.warmup) / max(1, a.iters - a.warmup)
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * min(1.0, r)))

    iters = a.bench if a.bench else a.iters
    t0 = time.time()
    run_loss = None
    for it in range(iters):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        starts = rng.integers(0, len(train) - a.ctx - 1, size=a.batch)
        x = torch.from_numpy(np.stack([train[s:s + a.ctx] for s in starts]))
        y = torch.from_numpy(np.stack([train[s + 1:s + a.ctx + 1] for s in starts]))
        model.train()
        loss = F.cross_entropy(model.logits_cf(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if a.bench:
            print(f"it {it} loss {loss.item():.3f} {time.time() - t0:.1f}s", flush=True)
            continue
        if (it + 1) % 100 == 0:
            print(f"it {it + 1} train~{run_loss:.4f} lr {lr_at(it):.2e} "
                  f"{time.time() - t0:.0f}s", flush=True)
        if (it + 1) % a.eval_every == 0 and it + 1 < iters:
            model.eval()
            nll, _ = mod.heldout_nll(model, val, a.ctx)
            print(f"  heldout {nll:.4f} nats/char", flush=True)
    if a.bench:
        print(f"{(time.time() - t0) / iters:.3f} s/iter", flush=True)
        return
    train_time = time.time() - t0
    model.eval()
    model.save(a.out, vocab)
    m2, _ = mod.load(a.out)
    nll, n = mod.heldout_nll(m2, val, a.ctx)
    print(f"training time {train_time:.0f}s", flush=True)
    print(f"final heldout {nll:.4f} nats/char = {nll / math.log(2):.4f} bits/char "
          f"over {n} predicted chars", flush=True)


if __name__ == "__main__":
    main()
