"""Reference outputs of vit-mnist.safetensors computed by PyTorch.

Writes ref/images_4.npy (float32 [4,1,28,28] = MNIST test images 8000..8003 / 255),
ref/labels_4.npy (int32 [4], true labels) and ref/logits_4.npy (float32 [4, 10]), and
ref/heldout_correct.txt: how many of the held-out images 8000..9999 PyTorch classifies correctly.
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
import model as M  # noqa: E402


def main():
    torch.set_num_threads(2)
    model = M.load(os.path.join(HERE, "vit-mnist.safetensors"))
    _, _, xte, yte = data.load_split()
    x = np.ascontiguousarray(xte[:4])  # images 8000..8003
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
        ref = model.forward_ref(torch.from_numpy(x))
    print("labels", yte[:4].tolist(), "argmax", ref.argmax(1).tolist(),
          f"fast-vs-plain max diff {(logits - ref).abs().max().item():.2e}")
    os.makedirs(os.path.join(HERE, "ref"), exist_ok=True)
    np.save(os.path.join(HERE, "ref", "images_4.npy"), x.astype(np.float32))
    np.save(os.path.join(HERE, "ref", "labels_4.npy"), yte[:4].astype(np.int32))
    np.save(os.path.join(HERE, "ref", "logits_4.npy"), ref.numpy().astype(np.float32))
    with torch.no_grad():
        acc, correct = M.accuracy(model, xte, yte)
    with open(os.path.join(HERE, "ref", "heldout_correct.txt"), "w") as f:
        f.write(f"{correct}\n")
    print(f"held-out accuracy {acc:.4f} ({correct} of {len(yte)})")


if __name__ == "__main__":
    main()
