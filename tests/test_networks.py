"""The three architectures: shapes, value ranges, channel handling, seeding."""
import pytest
import torch
import torch.nn.functional as F

from autoencoder_atelier.models.autoencoder import Autoencoder
from autoencoder_atelier.models.networks import ConvAutoencoder, DenseAutoencoder, build_network
from autoencoder_atelier.models.speedups import UpConv

from helpers import model_digest, tiny_ae, tiny_config


def rand_images(b, h, w, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g)


@pytest.mark.parametrize("arch", ["conv", "conv-vae"])
@pytest.mark.parametrize("downscale", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("hw", [(16, 16), (32, 48), (64, 16)])
def test_conv_encode_decode_shapes(arch, downscale, hw):
    h, w = hw
    ae = tiny_ae(arch, downscale=downscale, latent_channels=5)
    x = rand_images(2, h, w)
    with torch.no_grad():
        z = ae.model.encode(x)
        y = ae.model.decode(z)
    assert list(z.shape) == [2, 5, h // downscale, w // downscale] == [2] + ae.model.latent_shape(h, w)
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    assert y.shape == (2, 3, h, w) and y.dtype == torch.float32
    assert 0.0 <= y.min() and y.max() <= 1.0


@pytest.mark.parametrize("size", [4, 16, 28])
def test_dense_latent_is_a_vector(size):
    ae = tiny_ae("dense", image_size=size, latent_channels=6)
    x = rand_images(3, size, size)
    with torch.no_grad():
        z = ae.model.encode(x)
        y = ae.model.decode(z)
    assert z.shape == (3, 6, 1, 1)
    assert y.shape == (3, 3, size, size) and y.dtype == torch.float32
    assert 0.0 <= y.min() and y.max() <= 1.0


def test_dense_refuses_other_sizes():
    ae = tiny_ae("dense", image_size=16)
    with pytest.raises(RuntimeError):
        ae.model.encode(rand_images(1, 20, 20))


@pytest.mark.parametrize("arch", ["conv", "conv-vae", "dense"])
def test_grayscale_models_take_rgb_and_return_rgb(arch):
    ae = tiny_ae(arch, channels=1)
    s = 16 if arch == "dense" else 32
    x = rand_images(2, s, s)
    with torch.no_grad():
        z = ae.model.encode(x)
        y = ae.model.decode(z)
    assert y.shape == (2, 3, s, s)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    # the model really sees luma: an RGB image and its grey version encode alike
    luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    with torch.no_grad():
        z_grey = ae.model.encode(luma.expand(-1, 3, -1, -1).contiguous())
    assert torch.allclose(z, z_grey, atol=1e-5)
    # and the network's first layer takes one channel (four after pixel-unshuffle)
    first = next(m for m in ae.model.encoder.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert (first.in_features if arch == "dense" else first.in_channels) in (1, 4, s * s)


def test_extreme_latents_still_decode_to_0_1():
    ae = tiny_ae("conv")
    z = torch.full((1, 8, 4, 4), 1e4)
    with torch.no_grad():
        y = ae.model.decode(torch.cat([z, -z]))
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


def test_vae_encode_is_the_deterministic_mean():
    ae = tiny_ae("conv-vae")
    x = rand_images(2, 32, 32)
    with torch.no_grad():
        a, b = ae.model.encode(x), ae.model.encode(x)
        mean, logvar = ae.model.encode_moments(x * 1.0)
    assert torch.equal(a, b) and torch.equal(a, mean)
    assert logvar.shape == mean.shape and logvar.min() >= -30 and logvar.max() <= 20
    assert ae.model.variational and not tiny_ae("conv").model.variational


def test_training_forward_kl_only_for_vae():
    x = rand_images(2, 32, 32)
    _, kl = tiny_ae("conv").model.training_forward(x)
    assert kl is None
    recon, kl = tiny_ae("conv-vae").model.training_forward(x, generator=torch.Generator().manual_seed(0))
    assert recon.shape == x.shape and kl.ndim == 0 and kl.item() >= 0


def test_build_network_classes():
    assert isinstance(build_network(tiny_config("dense")), DenseAutoencoder)
    assert isinstance(build_network(tiny_config("conv")), ConvAutoencoder)
    assert isinstance(build_network(tiny_config("conv-vae")), ConvAutoencoder)


def test_new_is_seeded_and_leaves_global_rng_alone():
    cfg = tiny_config("conv")
    torch.manual_seed(7)
    before = torch.random.get_rng_state()
    a, b, c = Autoencoder.new(cfg, seed=3), Autoencoder.new(cfg, seed=3), Autoencoder.new(cfg, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.model_id != b.model_id  # separate lineages


def test_clone_is_deep_and_keeps_lineage():
    ae = tiny_ae("conv")
    ae.state.loss_history.append(0.5)
    ae.state.summary["x"] = 1
    before = model_digest(ae)
    c = ae.clone()
    assert c is not ae and c.model is not ae.model and c.model_id == ae.model_id
    with torch.no_grad():
        for p in c.model.parameters():
            p.add_(1.0)
    c.state.loss_history.append(0.25)
    c.state.summary["x"] = 2
    assert model_digest(ae) == before


def test_models_start_in_eval_mode_and_float32():
    for arch in ("conv", "conv-vae", "dense"):
        ae = tiny_ae(arch)
        assert not ae.model.training
        assert all(p.dtype == torch.float32 for p in ae.model.parameters())


def test_describe_mentions_architecture_and_input():
    text = tiny_ae("conv", downscale=8).describe()
    assert text.startswith("conv autoencoder") and "divisible by 8" in text and "untrained" in text
    dense = tiny_ae("dense", channels=1, image_size=16).describe()
    assert "grayscale 16x16" in dense and "1/" not in dense
    assert "Autoencoder(" in repr(tiny_ae("conv"))


@pytest.mark.parametrize("channels_last", [False, True])
def test_upconv_equals_nearest_upsample_then_conv(channels_last):
    """The low-resolution computation gives the textbook pair's values and gradients, borders included."""
    m = UpConv(5, 7).double()
    x = torch.randn(2, 5, 6, 9, dtype=torch.double)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    ref = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), m.weight, m.bias, padding=1)
    out = m(x)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-12)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, (x, m.weight, m.bias), g),
                    torch.autograd.grad(ref, (x, m.weight, m.bias), g)):
        assert torch.allclose(a, b, atol=1e-10)


def test_decoder_weights_keep_the_names_of_0_1_0_files():
    """0.1.0 decoders had an Upsample (no weights) before each upsampling conv: the numbering skips it."""
    keys = [k for k in tiny_ae("conv", downscale=8).model.state_dict() if k.startswith("decoder.") and "conv" not in k]
    assert keys == ["decoder.0.weight", "decoder.0.bias", "decoder.4.weight", "decoder.4.bias",
                    "decoder.8.weight", "decoder.8.bias", "decoder.11.weight", "decoder.11.bias"]
