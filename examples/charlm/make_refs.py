"""Reference outputs of charlm.safetensors computed by PyTorch.

Writes ref/tokens_64.npy (int32 [64]) + ref/logits_64.npy (float32 [64, V]) and
ref/tokens_256.npy + ref/logits_256.npy: token sequences are fixed slices of the
held-out text (starting at held-out character 0 for 64 tokens, 1000 for 256 tokens);
logits[t] are the next-character logits after reading tokens[0..t]. Also ref/greedy.txt, the
prompt "ROMEO:" continued by 80 greedy characters, and ref/heldout_nats.txt, the held-out loss in
nats/char (non-overlapping windows of 256, model.heldout_nll).
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as M  # noqa: E402


def write_refs(model, vocab, forward, outdir):
    """The references above for any character model of this vocabulary: forward(x [1, T]) gives
    its logits [1, T, V] (llamachar's make_refs.py calls this too)."""
    _, vocab2, _, val = M.load_text()
    assert vocab == vocab2
    os.makedirs(outdir, exist_ok=True)
    for T, start in ((64, 0), (256, 1000)):
        toks = val[start:start + T]
        with torch.no_grad():
            x = torch.from_numpy(toks)[None]
            logits = model(x)[0]
            ref = forward(x)[0]
        print(f"T={T} text={''.join(vocab[i] for i in toks[:40])!r}... "
              f"fast-vs-plain max diff {(logits - ref).abs().max().item():.2e}")
        np.save(os.path.join(outdir, f"tokens_{T}.npy"), toks.astype(np.int32))
        np.save(os.path.join(outdir, f"logits_{T}.npy"), ref.numpy().astype(np.float32))

    # greedy continuation of a prompt, recomputing the whole window at every step, as the compiled
    # program does with --temperature 0
    prompt, ids = "ROMEO:", list(M.encode("ROMEO:", vocab))
    with torch.no_grad():
        for _ in range(80):
            x = torch.tensor([ids[-256:]])
            ids.append(int(forward(x)[0, -1].argmax()))
    with open(os.path.join(outdir, "greedy.txt"), "w") as f:
        f.write("".join(vocab[i] for i in ids) + "\n")
    # held-out nats/char in non-overlapping windows of 256 (what `PROGRAM --eval` reports)
    with torch.no_grad():
        nll, n = M.heldout_nll(model, val)
    with open(os.path.join(outdir, "heldout_nats.txt"), "w") as f:
        f.write(f"{nll:.6f}\n")
    print(f"held-out {nll:.4f} nats/char over {n} characters; greedy: {prompt!r} ->", repr("".join(vocab[i] for i in ids[6:46])))


def main():
    torch.set_num_threads(2)
    model, vocab = M.load(os.path.join(HERE, "charlm.safetensors"))
    write_refs(model, vocab, model.forward_ref, os.path.join(HERE, "ref"))


if __name__ == "__main__":
    main()
