"""Training and encode/decode on a CUDA device with autocast (skipped without one)."""
import pytest
import torch

from helpers import procedural

from autoencoder_atelier.models import codec, tiling
from autoencoder_atelier.models.autoencoder import Autoencoder
from autoencoder_atelier.models.config import default_config
from autoencoder_atelier.models.precision import autocast_dtype, inference_dtype
from autoencoder_atelier.models.train import Trainer, TrainSettings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("precision", ["auto", "fp32", "fp16"])
def test_training_steps_on_cuda(precision):
    images = procedural(8, 64)
    ae = Autoencoder.new(default_config("conv", width=16), seed=0)
    trainer = Trainer(ae, images, TrainSettings(steps=12, batch_size=4, crop_size=32, precision=precision),
                      device="cuda")
    assert trainer.autocast == autocast_dtype(precision, "cuda")   # bf16 for auto where the GPU has it
    out = trainer.run()
    assert out.state.step == 12 and len(out.state.loss_history) == 12
    assert all(p.is_cuda and torch.isfinite(p).all() for p in out.model.parameters())
    assert all(v == v and v < 1 for v in out.state.loss_history)   # finite MSE of 0..1 images
    assert (out.state.loss_scale is not None) == (trainer.autocast is torch.float16)
    assert next(ae.model.parameters()).device.type == "cpu"   # the input model is left where it was


def test_encode_decode_on_cuda_match_the_cpu():
    ae = Autoencoder.new(default_config("conv"), seed=0)
    with torch.no_grad():   # make the conv pyramid contribute (a fresh model starts it at zero)
        for m in ae.model.modules():
            if isinstance(m, torch.nn.Conv2d) and not m.weight.any():
                m.weight.normal_(0, 0.02)
    images = procedural(2, 96)
    cpu = codec.decode(ae, codec.encode(ae, images, device="cpu"), device="cpu")
    gpu_ae = ae.clone()
    latent = codec.encode(gpu_ae, images, device="cuda")
    assert latent["samples"].device.type == "cpu"
    gpu = codec.decode(gpu_ae, latent, device="cuda")
    assert gpu.device.type == "cpu" and gpu.shape == images.shape
    assert (gpu - cpu).abs().max() <= 2 / 255
    dtype = inference_dtype(ae.config, "cuda")
    net, x = gpu_ae.on("cuda").model, images.movedim(-1, 1)   # the shared model stays on the CPU
    whole = tiling.decode(net, tiling.encode(net, x, "cuda", dtype), "cuda", dtype)
    tiled = tiling.decode(net, tiling.encode(net, x, "cuda", dtype, budget=1), "cuda", dtype, budget=1)
    assert (tiled - whole).abs().max() <= 1 / 255
