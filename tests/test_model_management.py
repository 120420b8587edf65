"""GPU memory shared with other models through ComfyUI's real model management.

The ComfyUI tests need its modules: run them with ComfyUI's Python and COMFYUI_DIR, e.g.
    COMFYUI_DIR=/work/comfyui /work/comfyui/venv/bin/python -m pytest -q tests/test_model_management.py
Without a GPU the compute device is the CPU, and a small card is simulated by ComfyUI's own free-memory
figure: its total less what the models it has loaded hold. With a GPU the same tests run on CUDA.
"""
import os
import sys

import pytest
import torch

from autoencoder_atelier.models import codec
from autoencoder_atelier.models.train import TrainSettings, memory_needed
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS, bridge
from helpers import ROOT, procedural, tiny_ae

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
BIG = 64 << 20   # bytes the other model holds


def test_compute_copies_never_move_the_shared_model():
    ae = tiny_ae("conv")
    assert ae.on("cpu") is ae
    moved = ae.on("meta")   # any other device: a copy there, sharing state and identity
    assert moved is not ae and moved.device.type == "meta" and moved.model_id == ae.model_id
    assert ae.device.type == "cpu"


@pytest.fixture(scope="module")
def mm():
    if not COMFYUI_DIR:
        pytest.skip("set COMFYUI_DIR (and run with ComfyUI's Python) to test against its model management")
    if os.path.basename(ROOT) == "comfy":   # a checkout named comfy: pytest imported it as the package `comfy`
        sys.path[:] = [p for p in sys.path if os.path.abspath(p) != os.path.dirname(ROOT)]
        sys.modules.pop("comfy", None)
    sys.path.insert(0, COMFYUI_DIR)
    try:
        from comfy.cli_args import args
        args.cpu = not torch.cuda.is_available()
        import comfy.model_management as model_management
        import comfy.model_patcher  # noqa: F401
    except ImportError as e:
        pytest.skip(f"ComfyUI's modules do not import here ({e}); run with ComfyUI's Python")
    return model_management


class OtherModel(torch.nn.Module):
    """Stands for a checkpoint or VAE another node loaded: one large tensor."""

    def __init__(self):
        super().__init__()
        self.register_buffer("weights", torch.zeros(BIG // 4))


@pytest.fixture
def card(mm, monkeypatch):
    """ComfyUI as our nodes see it, with another model loaded on a simulated card of ``card.total`` bytes."""
    import comfy.model_patcher
    import comfy.utils
    for name, value in (("IN_COMFYUI", True), ("_mm", mm), ("_cu", comfy.utils)):
        monkeypatch.setattr(bridge, name, value)
    device = mm.get_torch_device()
    other = comfy.model_patcher.ModelPatcher(OtherModel(), load_device=device, offload_device=mm.unet_offload_device())
    mm.load_models_gpu([other])
    state = type("Card", (), {"total": 0, "other": other, "device": device})()

    def free(dev=None, torch_free_too=False):
        held = sum(m.model_loaded_memory() for m in mm.current_loaded_models)
        left = max(0, state.total - held)
        return (left, left) if torch_free_too else left

    monkeypatch.setattr(mm, "get_free_memory", free)
    yield state
    mm.unload_all_models()


def loaded(mm, patcher):
    return any(m.model is patcher for m in mm.current_loaded_models)


def test_training_evicts_another_model_when_the_card_is_full(mm, card):
    ae, images = tiny_ae("conv"), procedural(8, 64)
    settings = dict(steps=3, batch_size=4, learning_rate=0.002, seed=0, loss="mse", crop_size=32)
    need = memory_needed(ae, images, TrainSettings(**settings)) + mm.extra_reserved_memory()
    card.total = BIG + need - 1   # the room training asks for is there only without the other model
    assert loaded(mm, card.other)
    with torch.inference_mode():
        trained, _, _ = NODE_CLASS_MAPPINGS["AtelierTrainAutoencoder"]().train(ae, images=images, **settings)
    assert not loaded(mm, card.other)
    assert card.other.model.weights.device == mm.unet_offload_device()
    assert trained.device.type == "cpu" and ae.device.type == "cpu"   # results and inputs stay off the GPU


def test_encode_and_decode_leave_other_models_alone_when_there_is_room(mm, card):
    ae = tiny_ae("conv")
    card.total = BIG + codec.memory_needed(ae) + mm.extra_reserved_memory() + (1 << 20)
    with torch.inference_mode():
        (latent,) = NODE_CLASS_MAPPINGS["AtelierEncode"]().encode(ae, procedural(2, 32))
        (images,) = NODE_CLASS_MAPPINGS["AtelierDecode"]().decode(ae, latent)
    assert loaded(mm, card.other) and images.shape == (2, 32, 32, 3)
    assert ae.device.type == "cpu"   # the cached AUTOENCODER was not parked on the compute device
    card.total = BIG   # now a decode needs the other model's room
    with torch.inference_mode():
        NODE_CLASS_MAPPINGS["AtelierDecode"]().decode(ae, latent)
    assert not loaded(mm, card.other)
