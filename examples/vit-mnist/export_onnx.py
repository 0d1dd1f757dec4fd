"""Exports the trained ViT (vit-mnist.safetensors, the plain timm formulation `forward_ref`) to ONNX
with torch.onnx.export: vit-mnist.onnx, opset 17 (LayerNormalization as one op), a batch of 4 images
[4, 1, 28, 28] (static shapes, so the exporter's shape subgraphs fold at import). kiln imports it
(tests/models/onnx_vitmnist.sh) and must match PyTorch's logits of ref/ and fuse its attention.

    /usr/bin/python3 examples/vit-mnist/export_onnx.py
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as M  # noqa: E402


class Ref(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, image):
        return self.m.forward_ref(image)


def main():
    model = M.load(os.path.join(HERE, "vit-mnist.safetensors"))
    x = torch.zeros(4, 1, 28, 28)
    path = os.path.join(HERE, "vit-mnist.onnx")
    with torch.no_grad():
        torch.onnx.export(Ref(model), (x,), path, input_names=["image"], output_names=["logits"],
                          opset_version=17, do_constant_folding=True)
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
