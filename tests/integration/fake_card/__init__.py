"""A test-only ComfyUI custom node pack (never shipped: .comfyignore leaves tests/ out): another "model" that
holds a large tensor through ComfyUI's model management, and a simulated card size, so the integration suite
can watch our nodes ask for room and ComfyUI evict it. Loaded by tests/integration/test_comfyui.py.

    POST /fake_card/total {"bytes": n}   simulate a card of n bytes (free = n - what loaded models hold;
                                         never more than really free); {"bytes": null} ends the simulation
    GET  /fake_card/state                the loaded models and ComfyUI's reserve
"""
import torch
from aiohttp import web

import comfy.model_management as mm
import comfy.model_patcher
from server import PromptServer

_real_free = mm.get_free_memory
_card = {"total": None}
_held = []


def _free(dev=None, torch_free_too=False):
    real = _real_free(dev, torch_free_too=True)
    if _card["total"] is None:
        return real if torch_free_too else real[0]
    held = sum(m.model_loaded_memory() for m in mm.current_loaded_models)
    left = min(real[0], max(0, _card["total"] - held))
    return (left, min(real[1], left)) if torch_free_too else left


mm.get_free_memory = _free


class _Weights(torch.nn.Module):
    def __init__(self, nbytes):
        super().__init__()
        self.register_buffer("weights", torch.ones(nbytes // 4))


class FakeCardHoldModel:
    """Loads a model of ``megabytes`` on the compute device through load_models_gpu, as a checkpoint loader
    and sampler would, and keeps it referenced (as ComfyUI's cache keeps a MODEL output)."""
    CATEGORY = "testing"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "hold"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"megabytes": ("INT", {"default": 256, "min": 1, "max": 1 << 20})}}

    def hold(self, megabytes):
        patcher = comfy.model_patcher.ModelPatcher(_Weights(megabytes << 20), load_device=mm.get_torch_device(),
                                                   offload_device=mm.unet_offload_device())
        mm.load_models_gpu([patcher])
        _held.append(patcher)
        return {"ui": {"text": [f"holding {megabytes} MB on {mm.get_torch_device()}"]}}


@PromptServer.instance.routes.post("/fake_card/total")
async def set_total(request):
    _card["total"] = (await request.json()).get("bytes")
    return web.json_response(_card)


@PromptServer.instance.routes.get("/fake_card/state")
async def state(request):
    loaded = [m.model for m in mm.current_loaded_models]
    return web.json_response({
        "held": [{"loaded": p in loaded, "device": str(p.model.weights.device),
                  "bytes": p.model.weights.numel() * 4} for p in _held],
        "reserve": mm.extra_reserved_memory(), "device": str(mm.get_torch_device()),
        "total": _card["total"]})


NODE_CLASS_MAPPINGS = {"FakeCardHoldModel": FakeCardHoldModel}
