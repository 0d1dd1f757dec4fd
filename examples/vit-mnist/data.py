"""MNIST loading (IDX format, gzip) and the fixed train / held-out split.

Only the 10,000 MNIST test images are available: images 0..7999 are used for
training, 8000..9999 are held out. Model input = pixel / 255 (float32 in [0, 1]),
shape [N, 1, 28, 28]; no other normalisation.
"""
import gzip
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "shared", "data")
N_TRAIN = 8000


def load_images(path=os.path.join(DATA, "mnist-t10k-images-idx3-ubyte.gz")):
    """uint8 [N, 28, 28]"""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    assert magic == 2051, magic
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols).copy()


def load_labels(path=os.path.join(DATA, "mnist-t10k-labels-idx1-ubyte.gz")):
    """uint8 [N]"""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    assert magic == 2049, magic
    return np.frombuffer(raw, dtype=np.uint8, offset=8)[:n].copy()


def to_input(images_u8):
    """uint8 [N, 28, 28] -> float32 [N, 1, 28, 28] = pixel / 255."""
    return (images_u8.astype(np.float32) / np.float32(255.0))[:, None, :, :]


def load_split():
    """Returns (x_train, y_train, x_heldout, y_heldout): x float32 [N,1,28,28], y int64."""
    x = to_input(load_images())
    y = load_labels().astype(np.int64)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]
