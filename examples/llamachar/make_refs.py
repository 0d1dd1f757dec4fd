"""Reference outputs of llamachar.safetensors computed by PyTorch, into ref/: the same files as
charlm's (../charlm/make_refs.py, whose write_refs this calls): logits of two held-out slices (64 and
256 tokens), the prompt "ROMEO:" continued by 80 greedy characters, and the held-out nats/char.

Usage (from anywhere):  /usr/bin/python3 examples/llamachar/make_refs.py
"""
import importlib.util
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as M  # noqa: E402

# charlm's make_refs.py by path, with charlm's folder first on the path while it loads (its own
# `import model` must find charlm's model.py, not this folder's)
sys.path.insert(0, os.path.join(HERE, "..", "charlm"))
_spec = importlib.util.spec_from_file_location("charlm_refs", os.path.join(HERE, "..", "charlm", "make_refs.py"))
refs = importlib.util.module_from_spec(_spec)
_saved = sys.modules.pop("model")
_spec.loader.exec_module(refs)
sys.modules["model"] = _saved
sys.path.pop(0)

if __name__ == "__main__":
    torch.set_num_threads(2)
    model, vocab = M.load(os.path.join(HERE, "llamachar.safetensors"))
    refs.write_refs(model, vocab, model.forward, os.path.join(HERE, "ref"))
