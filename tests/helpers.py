"""Plain helpers for the tests (imported as ``helpers``; conftest puts tests/ on sys.path)."""
import hashlib
import json
import os
import re
import struct
import threading

import pytest
import torch

import atelier

atelier.load_pack()

from autoencoder_atelier.models.autoencoder import Autoencoder  # noqa: E402
from autoencoder_atelier.models.config import default_config  # noqa: E402
from autoencoder_atelier.models.procedural import make_images  # noqa: E402
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tensor_digest(t):
    """Hash of a tensor's dtype, shape and exact bytes."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def deep_digest(value):
    """Hash of nested dicts/lists/tuples of tensors and plain values (e.g. a LATENT dict)."""
    h = hashlib.sha256()

    def walk(v):
        if isinstance(v, torch.Tensor):
            h.update(b"T" + tensor_digest(v).encode())
        elif isinstance(v, dict):
            h.update(b"{")
            for k in sorted(v, key=str):
                h.update(repr(k).encode())
                walk(v[k])
            h.update(b"}")
        elif isinstance(v, (list, tuple)):
            h.update(b"[")
            for x in v:
                walk(x)
            h.update(b"]")
        else:
            h.update(repr(v).encode())

    walk(value)
    return h.hexdigest()


def model_digest(ae):
    """Everything an Autoencoder carries: weights, config, id, and its whole training state."""
    st = ae.state
    return deep_digest({
        "weights": dict(ae.model.state_dict()),
        "config": ae.config,
        "model_id": ae.model_id,
        "step": st.step,
        "optimizer": st.optimizer,
        "history": list(st.loss_history),
        "summary": json.dumps(st.summary, sort_keys=True, default=str),
        "stats": st.latent_stats,
        "training_mode": ae.model.training,
    })


def weights_equal(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def write_raw_safetensors(path, header, data=b""):
    """Write a safetensors-shaped file with an arbitrary header dict (or raw header bytes)."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + data)
    return path


def read_safetensors(path):
    """(metadata, {name: tensor}) of a safetensors file, read with the safetensors library."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys()}


def resave(src, dst, meta=None, tensors=None, drop=(), metadata=True):
    """Copy a safetensors file, overriding metadata entries / tensors (None value = remove)."""
    from safetensors.torch import save_file
    m, t = read_safetensors(src)
    for k, v in (meta or {}).items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    for k, v in (tensors or {}).items():
        if v is None:
            t.pop(k, None)
        else:
            t[k] = v
    for k in drop:
        t.pop(k, None)
    save_file(t, str(dst), metadata=m if metadata else None)
    return dst


def header_length(path):
    with open(path, "rb") as f:
        return struct.unpack("<Q", f.read(8))[0]


# Data shared between checkouts (art collection, MNIST). A fresh clone has none.
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))


def shared_path(*parts):
    """Path under the shared data folder, or skip the test when it is absent."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"shared data not available ({path})")
    return path


_IMAGE_CACHE = {}


def procedural(n=8, size=32, seed=0):
    """A fresh (mutable, independent) IMAGE batch [n,size,size,3] float32 in 0..1."""
    key = (n, size, seed)
    if key not in _IMAGE_CACHE:
        _IMAGE_CACHE[key] = make_images(n, size, seed=seed)
    return torch.from_numpy(_IMAGE_CACHE[key].copy())


def tiny_config(architecture="conv", **overrides):
    """Small enough to train in well under a second on one CPU core."""
    base = dict(width=8, latent_channels=8, downscale=4, image_size=32, blocks=1)
    if architecture == "dense":
        base.update(width=32, latent_channels=8, downscale=1, image_size=16)
    base.update(overrides)
    return default_config(architecture, **base)


def tiny_ae(architecture="conv", seed=0, **overrides):
    return Autoencoder.new(tiny_config(architecture, **overrides), seed=seed)


FAST = dict(batch_size=4, learning_rate=5e-3, crop_size=32)   # learns visibly in a few steps; whole 32px images


def node(node_id):
    """A fresh instance of a node class."""
    return NODE_CLASS_MAPPINGS[node_id]()


def call(node_id, **inputs):
    """Call a node the way ComfyUI does (inference mode); return its result tuple."""
    n = node(node_id)
    with torch.inference_mode():
        out = getattr(n, type(n).FUNCTION)(**inputs)
    return out["result"] if isinstance(out, dict) else out


def error_start(node_id):
    """How the node's refusals begin, "<display name>: " (decided in one place, nodes/base.py)."""
    return f"{NODE_CLASS_MAPPINGS[node_id].error_prefix()}: "


def refusal(node_id, pattern=""):
    """A pattern for ``pytest.raises(match=...)``: the node's refusal, then ``pattern`` (a regex)."""
    return "^" + re.escape(error_start(node_id)) + pattern


def without_hanging(fn, seconds=30):
    """``fn()``'s result (or exception), failing the test if it has not returned within ``seconds``: for
    what would block forever, such as reading a FIFO. The thread is left behind, as a daemon."""
    out = []

    def run():
        try:
            out.append(fn())
        except Exception as e:  # noqa: BLE001 - re-raised below, in the test's thread
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "hung on a special file"
    if isinstance(out[0], Exception):
        raise out[0]
    return out[0]
