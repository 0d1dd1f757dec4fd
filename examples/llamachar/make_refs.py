"""Reference outputs of llamachar.safetensors computed by PyTorch, into ref/: the same files as
charlm's (../charlm/make_refs.py, whose write_refs this calls): logits of two held-out slices (64 and
256 tokens), the prompt "ROMEO:" continued by 80 greedy characters, and the held-out nats/char.

Usage (from anywhere):  /usr/bin/python3 examples/llamachar/make_refs.py
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as M  # noqa: E402

refs = M.charlm_script("charlm_refs", "make_refs.py")

if __name__ == "__main__":
    torch.set_num_threads(2)
    model, vocab = M.load(os.path.join(HERE, "llamachar.safetensors"))
    refs.write_refs(model, vocab, model.forward, os.path.join(HERE, "ref"))
