"""Tiled encode/decode: tiles with context and blended overlaps match the whole-image pass."""
import pytest
import torch
import torch.nn.functional as F

from autoencoder_atelier.models import codec, tiling
from autoencoder_atelier.models.autoencoder import Autoencoder
from autoencoder_atelier.models.config import default_config

ONE_LEVEL = 1 / 255


def busy_model(seed=0, **cfg):
    """A conv model whose conv pyramid really contributes (a fresh one starts with its last layers at zero)."""
    ae = Autoencoder.new(default_config("conv", **cfg), seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in ae.model.modules():
            if isinstance(m, torch.nn.Conv2d) and not m.weight.any():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)
    return ae


def picture(h, w, seed=0):
    """Smooth random colours: image-like, so the net's response is image-like too."""
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
    return F.avg_pool2d(x, 5, 1, 2)


@pytest.mark.parametrize("cfg", [dict(downscale=8), dict(downscale=4, blocks=2), dict(downscale=1, blocks=0)])
def test_context_covers_the_receptive_field(cfg):
    """Changing one latent cell changes decoded pixels only within the computed context (and does change some)."""
    net = busy_model(**cfg).model
    enc_cells, dec_cells = net.context_cells()
    f, n, c = net.downscale, 24, net.latent_channels
    z = torch.randn(1, c, n, n, generator=torch.Generator().manual_seed(1)) * 0.3
    z2 = z.clone()
    z2[..., n // 2, n // 2] += 1.0
    with torch.no_grad():
        moved = (net.decode_raw(z2) - net.decode_raw(z)).abs().amax(dim=(0, 1)) > 0
    rows = moved.any(1).nonzero().flatten() // f
    assert rows.numel() and int((rows - n // 2).abs().max()) <= dec_cells
    x = picture(n * f, n * f)
    x2 = x.clone()
    x2[..., n // 2 * f, n // 2 * f] += 0.5
    with torch.no_grad():
        moved = (net.encode(x2) - net.encode(x)).abs().amax(dim=(0, 1)) > 0
    rows = moved.any(1).nonzero().flatten()
    assert rows.numel() and int((rows - n // 2).abs().max()) <= enc_cells


@pytest.mark.parametrize("size,tile,context,blend", [((37, 23), 8, 3, 2), ((16, 50), 5, 2, 2), ((9, 9), 4, 0, 0)])
def test_blend_weights_sum_to_one(size, tile, context, blend):
    x = torch.rand(2, 3, *size)
    out = tiling.tiled(lambda t: t * 1.0, x, 1, 1, tile, context, blend)
    assert torch.allclose(out, x, atol=1e-6)
    up = tiling.tiled(lambda t: F.interpolate(t, scale_factor=4), x, 1, 4, tile, context, blend)
    assert torch.allclose(up, F.interpolate(x, scale_factor=4), atol=1e-6)


@pytest.mark.parametrize("cfg,size", [(dict(downscale=8), (200, 136)), (dict(downscale=4, blocks=2), (92, 120))])
def test_tiled_encode_and_decode_match_the_whole_image(cfg, size):
    net = busy_model(**cfg).model
    x = picture(*size)
    whole_z = tiling.encode(net, x)
    whole_y = tiling.decode(net, whole_z)
    calls = []
    real = tiling.tiled

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    tiling.tiled, budget = spy, 1   # a budget nothing fits in: the smallest tiles
    try:
        tiled_z = tiling.encode(net, x, budget=budget)
        tiled_y = tiling.decode(net, whole_z, budget=budget)
    finally:
        tiling.tiled = real
    assert len(calls) == 2
    assert (tiled_z - whole_z).abs().max() < 1e-4
    assert (tiled_y - whole_y).abs().max() <= ONE_LEVEL


def test_seams_show_without_context_and_vanish_with_a_capped_context_and_blend():
    """A tile cut blind (no context) leaves visible seams, so the comparison above can fail; a context
    far below the receptive field (what a deep model gets at MAX_CONTEXT) plus the blend stays under 1/255."""
    net = busy_model(downscale=4, blocks=3).model
    assert min(net.context_cells()) > 6
    z = tiling.encode(net, picture(128, 128))
    with torch.no_grad():
        whole = net.decode(z)
        blind = tiling.tiled(net.decode, z, 1, 4, 8, context=0, blend=0)
        capped = tiling.tiled(net.decode, z, 1, 4, 8, context=4, blend=2)
    assert (blind - whole).abs().max() > 2 * ONE_LEVEL
    assert (capped - whole).abs().max() <= ONE_LEVEL


def test_codec_tiles_big_images_automatically(monkeypatch):
    ae = busy_model()
    images = picture(160, 96).movedim(1, -1)
    whole = codec.decode(ae, codec.encode(ae, images))
    monkeypatch.setattr(tiling, "MEMORY_BUDGET", 64 << 10)
    used = []
    real = tiling.tiled
    monkeypatch.setattr(tiling, "tiled", lambda *a, **k: used.append(1) or real(*a, **k))
    latent = codec.encode(ae, images)
    tiled = codec.decode(ae, latent)
    assert used and tiled.shape == whole.shape == images.shape
    assert (tiled - whole).abs().max() <= ONE_LEVEL


def test_bf16_inference_stays_within_a_level_of_float32():
    ae = busy_model()
    x = picture(64, 64)
    y32 = tiling.decode(ae.model, tiling.encode(ae.model, x))
    y16 = tiling.decode(ae.model, tiling.encode(ae.model, x, dtype=torch.bfloat16), dtype=torch.bfloat16)
    assert (y16 - y32).abs().max() <= ONE_LEVEL


def test_passes_hold_as_many_images_as_the_budget_allows(monkeypatch):
    net = busy_model().model
    x = torch.cat([picture(32, 32, seed=i) for i in range(5)])
    sizes = []
    real = net.encode
    monkeypatch.setattr(net, "encode", lambda t: sizes.append(t.shape[0]) or real(t))
    per_image = tiling.bytes_per_pixel(net) * 32 * 32
    z = tiling.encode(net, x, budget=2 * per_image)
    assert sizes == [2, 2, 1]
    assert torch.allclose(z, torch.cat([real(x[i:i + 1]) for i in range(5)]), atol=1e-5)


def test_progress_counts_every_tile_and_every_pass(monkeypatch):
    ae = busy_model()
    images = picture(384, 256).movedim(1, -1).expand(2, -1, -1, -1)
    monkeypatch.setattr(tiling, "MEMORY_BUDGET", 64 << 10)
    seen = []
    latent = codec.encode(ae, images, progress=lambda done, total: seen.append((done, total)))
    total = seen[0][1]
    assert total >= 4 and total % 2 == 0 and seen == [(i, total) for i in range(1, total + 1)]   # one per tile
    seen.clear()
    codec.decode(ae, latent, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] > 2
    monkeypatch.setattr(tiling, "MEMORY_BUDGET", 1 << 40)   # small enough for one pass: one step
    seen.clear()
    codec.encode(ae, images, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 1)]


def test_restore_progress_fills_one_bar_across_its_encodes_and_decodes():
    from autoencoder_atelier.models.restore import restore
    ae, images = busy_model(), picture(32, 32).movedim(1, -1).expand(2, -1, -1, -1)
    mask = torch.zeros(2, 32, 32)
    mask[1, 4:12, 4:12] = 1      # one picture cleaned whole, one with two passes over its marked damage
    seen = []
    restore(ae, images, mask, passes=2, progress=lambda done, total: seen.append(done / total))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 6


def test_encode_and_decode_nodes_move_the_progress_bar_per_tile(monkeypatch):
    from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS, bridge
    monkeypatch.setattr(tiling, "MEMORY_BUDGET", 64 << 10)
    seen = []
    monkeypatch.setattr(bridge.HeadlessProgressBar, "hook", staticmethod(lambda v, t, p=None: seen.append((v, t))))
    ae = busy_model()
    (latent,) = NODE_CLASS_MAPPINGS["AtelierEncode"]().encode(ae, picture(384, 256).movedim(1, -1))
    assert len(seen) >= 4 and seen[-1][0] == seen[-1][1] == len(seen)
    seen.clear()
    NODE_CLASS_MAPPINGS["AtelierDecode"]().decode(ae, latent)
    assert len(seen) >= 4 and seen[-1][0] == seen[-1][1] == len(seen)


def test_a_layer_tiling_does_not_know_is_refused_not_given_zero_context():
    from autoencoder_atelier.models.layers import reach
    assert reach(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 5, padding=2), torch.nn.ReLU()))[0] == 2
    with pytest.raises(TypeError, match="AvgPool2d"):
        reach(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.AvgPool2d(3, 1, 1)))
