"""No in-range widget value may exhaust the machine: every node whose memory grows with an input estimates
it first and refuses beyond ATELIER_MEMORY_BUDGET_MB, naming the input and the largest value that fits
(which then runs). CPU out-of-memory is recognised like the GPU's."""
import re

import pytest
import torch

from autoencoder_atelier.models import memory
from autoencoder_atelier.models.train import Trainer

from helpers import call, error_start, procedural, tiny_ae


@pytest.fixture
def budget(monkeypatch):
    def set_mb(mb):
        monkeypatch.setenv(memory.ENV, str(mb))
    return set_mb


def refused(node, name, **inputs):
    """Call the node, expect the budget refusal, return the largest value it says fits."""
    with pytest.raises(ValueError) as e:
        call(node, **inputs)
    msg = str(e.value)
    assert msg.startswith(error_start(node)), msg
    m = re.search(rf"{re.escape(name)}=\d+ would need about .* more than the budget of .*: lower {re.escape(name)} "
                  rf"to (\d+) or less \(or raise {memory.ENV}", msg)
    assert m, msg
    return int(m.group(1))


def stats_model():
    ae = tiny_ae("conv")
    c = ae.config["latent_channels"]
    ae.state.latent_stats = {"mean": torch.zeros(c), "cov": torch.eye(c)}
    return ae


def test_sample_latent(budget):
    budget(8)
    ae = stats_model()
    args = dict(autoencoder=ae, width=1024, height=1024, seed=0, temperature=1.0)
    fits = refused("AtelierSampleLatent", "batch_size", batch_size=256, **args)
    assert 1 <= fits < 256
    assert call("AtelierSampleLatent", batch_size=fits, **args)[0]["samples"].shape[0] == fits


def test_a_prior_s_samples_and_variations_count_its_working_memory(budget):
    """Quilting and patch matching hold 36-41 float32 copies of the latents they make: a budget that the plain
    noise (2 copies) fits 128 times over fits a few. Latent Variations once had no check at all."""
    from autoencoder_atelier.models.prior_training import learn_prior
    ae = learn_prior(tiny_ae("conv", latent_channels=4), procedural(4, 32))
    budget(16)   # a 64x64-cell latent of 4 channels is 64 KB
    args = dict(autoencoder=ae, latent={"samples": torch.randn(2, 4, 64, 64)}, strength=0.5, seed=0)
    fits = refused("AtelierLatentVariations", "batch_size", batch_size=64, **args)
    assert 1 <= fits <= 4
    assert call("AtelierLatentVariations", batch_size=fits, **args)[0]["samples"].shape[0] == 2 * fits
    args = dict(autoencoder=ae, width=256, height=256, seed=0, temperature=1.0)
    fits = refused("AtelierSampleLatent", "batch_size", batch_size=256, **args)
    assert 1 <= fits <= 8
    assert call("AtelierSampleLatent", batch_size=fits, **args)[0]["samples"].shape[0] == fits


def test_latent_walk(budget):
    budget(1)
    keys = {"samples": torch.randn(2, 8, 32, 32)}
    args = dict(keyframes=keys, method="slerp", easing="linear", loop=False)
    fits = refused("AtelierLatentWalk", "frames", frames=4096, **args)
    assert call("AtelierLatentWalk", frames=fits, **args)[0]["samples"].shape[0] == fits


def test_visualize_latent(budget):
    budget(2)
    z = {"samples": torch.randn(2, 8, 32, 32)}
    fits = refused("AtelierVisualizeLatent", "scale", latent=z, mode="pca-rgb", scale=64)
    assert call("AtelierVisualizeLatent", latent=z, mode="pca-rgb", scale=fits)[0].shape[1] == 32 * fits


def test_visualize_latent_counts_the_pca_working_set(budget, monkeypatch):
    """pca-rgb holds float64 copies of every latent value (16 bytes each, measured): a [1,256,64,64] latent whose
    picture at scale 1 is 100 KB needs about 16 MB. Only the picture was counted, so a [1,256,2048,2048] latent
    passed the check and then asked for 16 GB. Refused before anything is allocated; fits a budget above it."""
    from autoencoder_atelier.nodes import explore_nodes
    z = torch.randn(1, 256, 64, 64)
    before = z.clone()
    real = explore_nodes.latent_rgb
    monkeypatch.setattr(explore_nodes, "latent_rgb", lambda *_: pytest.fail("the PCA ran before the budget check"))
    budget(8)
    with pytest.raises(ValueError) as e:
        call("AtelierVisualizeLatent", latent={"samples": z}, mode="pca-rgb", scale=1)
    msg = str(e.value)
    assert msg.startswith(error_start("AtelierVisualizeLatent") + "scale=1 would need about 16 MB"), msg
    assert "even scale=1 does not fit; show fewer or smaller latents" in msg, msg
    assert torch.equal(z, before)
    monkeypatch.setattr(explore_nodes, "latent_rgb", real)
    budget(24)
    assert call("AtelierVisualizeLatent", latent={"samples": z}, mode="pca-rgb", scale=1)[0].shape == (1, 64, 64, 3)


def test_image_grid(budget):
    budget(1)
    images = torch.rand(64, 8, 8, 3)
    fits = refused("AtelierImageGrid", "padding", images=images, columns=0, padding=64)
    assert call("AtelierImageGrid", images=images, columns=0, padding=fits)[0].shape[0] == 1


def test_decode(budget, monkeypatch):
    """A model with grain (loss sharp) makes one more batch of pictures: fewer fit the same budget."""
    from autoencoder_atelier.models import tiling
    monkeypatch.setattr(tiling, "MEMORY_BUDGET", 1 << 20)
    budget(16)
    fits = {}
    for grain in (None, 1.5):
        ae = tiny_ae("conv")
        if grain:
            ae.state.summary["grain"] = grain
        z = {"samples": torch.randn(16, ae.config["latent_channels"], 64, 64)}
        fits[grain] = refused("AtelierDecode", "the latent's batch size", autoencoder=ae, latent=z)
        assert call("AtelierDecode", autoencoder=ae, latent={"samples": z["samples"][:fits[grain]]})[0].shape[0] \
            == fits[grain]
    assert 1 <= fits[1.5] < fits[None] < 16, fits


def test_train(budget):
    budget(64)
    args = dict(autoencoder=tiny_ae("conv"), images=procedural(2, 64), steps=1, learning_rate=0.001, seed=0,
                loss="mse", crop_size=64)
    fits = refused("AtelierTrainAutoencoder", "batch_size", batch_size=4096, **args)
    assert 1 <= fits < 4096
    call("AtelierTrainAutoencoder", batch_size=fits, **args)


def test_new_autoencoder(budget):
    budget(1024)
    args = dict(architecture="conv", latent_channels=8, downscale="8", image_size=64, seed=0, blocks=8)
    fits = refused("AtelierNewAutoencoder", "width", width=128, **args)
    assert call("AtelierNewAutoencoder", width=fits, **args)[0].config["width"] == fits


@pytest.mark.parametrize("error", [RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't "
                                                "allocate memory: you tried to allocate 21474836480 bytes."),
                                   MemoryError()])
def test_cpu_out_of_memory_gets_the_batch_size_advice(error, monkeypatch):
    real = Trainer.step

    def step(self, i):
        if self.settings.batch_size > 2:
            raise error
        return real(self, i)

    monkeypatch.setattr(Trainer, "step", step)
    with pytest.raises(ValueError, match="ran out of memory training with batch_size 8 on 16x16 crops: batch_size 2 "
                                         "fits \\(measured\\)"):
        call("AtelierTrainAutoencoder", autoencoder=tiny_ae("conv"), images=procedural(4, 32), steps=2,
             batch_size=8, learning_rate=0.001, seed=0, loss="mse", crop_size=16)


def test_other_runtime_errors_are_not_mistaken_for_out_of_memory(monkeypatch):
    monkeypatch.setattr(Trainer, "step", lambda self, i: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        call("AtelierTrainAutoencoder", autoencoder=tiny_ae("conv"), images=procedural(4, 32), steps=2,
             batch_size=8, learning_rate=0.001, seed=0, loss="mse", crop_size=16)
