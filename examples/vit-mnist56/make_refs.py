"""Reference outputs of vit-mnist56.safetensors computed by PyTorch, for tests/models/vitmnist56.sh.

Writes ref/images_4.npy (float32 [4, 1, 56, 56]: MNIST test images 8000..8003 / 255, each pixel
repeated 2 x 2), ref/labels_4.npy (int32 [4]), ref/logits_4.npy (float32 [4, 10], timm's formulation,
`forward_ref`), ref/heldout_correct.txt (how many of the held-out images 8000..9999 PyTorch classifies
correctly), and ref/tome_r13.npy, ref/evit_07.npy: the four images' logits under ToMe r = 13 (with
proportional attention) and EViT (keep 0.7 at layers 1, 3, 5), in float64, by the reference forward
passes of tests/models/prune/make_refs.py (ToMe's and EViT's code rewritten from their definitions).
"""
import importlib.util
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


T = _load("vm56_train", os.path.join(HERE, "train.py"))
PR = _load("prune_refs", os.path.join(ROOT, "tests", "models", "prune", "make_refs.py"))


def main():
    torch.set_num_threads(2)
    M = T.M
    model = M.load(os.path.join(HERE, "vit-mnist56.safetensors"))
    _, _, xte, yte = T.load_split56()
    x = np.ascontiguousarray(xte[:4])  # images 8000..8003
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
        ref = model.forward_ref(torch.from_numpy(x))
    print("labels", yte[:4].tolist(), "argmax", ref.argmax(1).tolist(),
          f"fast-vs-plain max diff {(logits - ref).abs().max().item():.2e}")
    out = os.path.join(HERE, "ref")
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "images_4.npy"), x.astype(np.float32))
    np.save(os.path.join(out, "labels_4.npy"), yte[:4].astype(np.int32))
    np.save(os.path.join(out, "logits_4.npy"), ref.numpy().astype(np.float32))
    m64, x64 = model.double(), torch.from_numpy(x).double()
    with torch.no_grad():
        for name, y in (("tome_r13", PR.tome_forward(m64, x64, 13)),
                        ("evit_07", PR.evit_forward(m64, x64, 0.7, (1, 3, 5)))):
            np.save(os.path.join(out, f"{name}.npy"), y.numpy().astype(np.float32))
            print(name, y.argmax(1).tolist())
    model = M.load(os.path.join(HERE, "vit-mnist56.safetensors"))
    with torch.no_grad():
        acc, correct = M.accuracy(model, xte, yte)
    with open(os.path.join(out, "heldout_correct.txt"), "w") as f:
        f.write(f"{correct}\n")
    print(f"held-out accuracy {acc:.4f} ({correct} of {len(yte)})")


if __name__ == "__main__":
    main()
