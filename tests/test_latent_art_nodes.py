"""Style mix, collage and sampling: the maths the creative-control issue promises."""
import pytest
import torch

from autoencoder_atelier.models.latent_math import _channel_stats, collage, fit_mask, style_mix
from autoencoder_atelier.models.train import TrainSettings, train
from helpers import node, procedural, refusal, tiny_ae


def latents(*shape, seed=0, scale=1.0, shift=0.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale + shift


def test_style_mix_at_strength_one_matches_the_style_statistics():
    content, style = latents(2, 6, 8, 8), latents(1, 6, 5, 7, seed=1, scale=3.0, shift=2.0)
    (out,) = node("AtelierLatentStyleMix").style({"samples": content, "k": 1}, {"samples": style}, 1.0)
    m, s = _channel_stats(out["samples"])
    sm, ss = _channel_stats(torch.nn.functional.interpolate(style, size=(8, 8), mode="bilinear"))
    assert (m - sm).abs().max() < 1e-4 and (s - ss).abs().max() < 1e-4
    assert out["k"] == 1 and out["samples"].shape == content.shape


def test_style_mix_strength_zero_and_an_empty_mask_leave_the_content_alone():
    content, style = latents(1, 4, 8, 8), latents(1, 4, 8, 8, seed=2, scale=2.0)
    assert torch.equal(style_mix(content, style, 0.0), content)
    assert torch.equal(style_mix(content, style, 1.0, fit_mask(torch.zeros(64, 64), content)), content)
    half = torch.zeros(64, 64)
    half[:, 32:] = 1
    out = style_mix(content, style, 1.0, fit_mask(half, content))
    assert torch.equal(out[..., :4], content[..., :4]) and not torch.equal(out[..., 4:], content[..., 4:])


def test_collage_selects_a_where_the_mask_is_white_and_b_where_black():
    a, b = latents(2, 4, 8, 8), latents(2, 4, 8, 8, seed=3)
    cut = node("AtelierLatentCollage").collage
    (out,) = cut({"samples": a}, {"samples": b}, "left-right", 0.5, 2.0, mask=torch.ones(64, 64))
    assert torch.equal(out["samples"], a)
    (out,) = cut({"samples": a}, {"samples": b}, "left-right", 0.5, 2.0, mask=torch.zeros(1, 30, 30))
    assert torch.equal(out["samples"], b)
    left = torch.zeros(64, 64)
    left[:, :32] = 1
    mixed = collage(a, b, fit_mask(left, a, feather=0.0))
    assert torch.equal(mixed[..., :4], a[..., :4]) and torch.equal(mixed[..., 4:], b[..., 4:])
    soft = fit_mask(left, a, feather=1.5)[0, 0, 0]
    assert soft[0] > 0.99 and soft[-1] < 0.01 and 0 < soft[4] < 1 and torch.all(soft[1:] <= soft[:-1])


@pytest.mark.parametrize("split, a_cells", [("left-right", (slice(None), slice(0, 3))),
                                            ("top-bottom", (slice(0, 3), slice(None))),
                                            ("circle", (slice(3, 5), slice(3, 5)))])
def test_collage_without_a_mask_cuts_along_the_split(split, a_cells):
    a, b = latents(1, 4, 8, 8), latents(1, 4, 8, 8, seed=4)
    (out,) = node("AtelierLatentCollage").collage({"samples": a}, {"samples": b}, split, 0.4, 0.0)
    z = out["samples"]
    assert torch.equal(z[..., a_cells[0], a_cells[1]], a[..., a_cells[0], a_cells[1]])
    assert torch.equal(z[..., 7, 7], b[..., 7, 7])               # the far corner is B's for every split
    (whole,) = node("AtelierLatentCollage").collage({"samples": a}, {"samples": b}, split, 1.0, 0.0)
    (none,) = node("AtelierLatentCollage").collage({"samples": a}, {"samples": b}, split, 0.0, 3.0)
    assert torch.equal(none["samples"], b)
    assert torch.equal(whole["samples"], a)   # position 1 gives every cell to A, a circle's corners too


def test_bad_masks_are_refused_clearly():
    with pytest.raises(ValueError, match=refusal("AtelierLatentCollage", "a mask must be")):
        node("AtelierLatentCollage").collage({"samples": latents(1, 4, 8, 8)}, {"samples": latents(1, 4, 8, 8)},
                                             "left-right", 0.5, 1.0, mask=torch.ones(1, 1, 8, 8))


def test_samples_from_a_trained_plain_model_match_its_stored_statistics():
    ae = train(tiny_ae("conv"), procedural(8, 32), TrainSettings(steps=5, batch_size=4))
    stats = ae.state.latent_stats
    (lat,) = node("AtelierSampleLatent").sample(ae, 64, 64, 64, 0, 1.0)
    z = lat["samples"]
    assert z.shape == (64, ae.config["latent_channels"], 64 // ae.config["downscale"], 64 // ae.config["downscale"])
    v = z.movedim(1, -1).reshape(-1, z.shape[1]).double()
    scale = stats["cov"].diagonal().sqrt().double()
    assert ((v.mean(0) - stats["mean"].double()).abs() / scale).max() < 0.1
    assert ((torch.cov(v.T) - stats["cov"].double()).abs() / (scale[:, None] * scale[None])).max() < 0.1
    (again,) = node("AtelierSampleLatent").sample(ae, 64, 64, 64, 0, 1.0)
    assert torch.equal(again["samples"], z) and lat["atelier_model"] == ae.model_id
    (images,) = node("AtelierDecode").decode(ae, lat)
    assert images.shape == (64, 64, 64, 3)


def test_vae_samples_come_from_the_prior_and_untrained_models_are_refused():
    vae = tiny_ae("conv-vae")
    (lat,) = node("AtelierSampleLatent").sample(vae, 16, 32, 32, 1, 0.5)
    assert abs(lat["samples"].std().item() - 0.5) < 0.05
    with pytest.raises(ValueError, match="no latent statistics yet"):
        node("AtelierSampleLatent").sample(tiny_ae("conv"), 1, 32, 32, 0, 1.0)


def test_directions_are_orthonormal_ordered_by_variance_and_edit_moves_along_them():
    base = latents(1, 4, 4, 4, seed=5)
    axes = torch.linalg.qr(latents(64, 3, seed=6))[0].T.reshape(3, 4, 4, 4)   # 3 orthonormal axes
    coef = latents(40, 3, seed=7) * torch.tensor([3.0, 1.0, 0.3])
    z = base + torch.einsum("nk,kchw->nchw", coef, axes)
    d, chart = node("AtelierLatentDirections").find({"samples": z}, 8)
    dirs = d["directions"].reshape(d["directions"].shape[0], -1)
    assert torch.allclose(dirs @ dirs.T, torch.eye(dirs.shape[0]), atol=1e-5)
    assert torch.all(d["variance"][1:] <= d["variance"][:-1])
    assert abs(float(torch.dot(dirs[0], axes[0].flatten()))) > 0.99   # the strongest axis comes first
    assert chart.shape[0] == 1 and chart.shape[-1] == 3
    (moved,) = node("AtelierLatentEdit").edit({"samples": z[:2]}, d, 0, 2.0)
    step = (moved["samples"] - z[:2]).reshape(2, -1)
    assert torch.allclose(step, (2.0 * d["variance"][0].sqrt() * dirs[0]).expand(2, -1), atol=1e-5)
    with pytest.raises(ValueError, match="direction 9 does not exist"):
        node("AtelierLatentEdit").edit({"samples": z[:1]}, d, 9, 1.0)


@pytest.mark.parametrize("bad", [None, "directions", {}, {"directions": torch.zeros(2, 4, 4, 4)},
                                 {"directions": [[0.0]], "variance": torch.ones(2)},
                                 {"directions": torch.zeros(2, 4, 4, 4), "variance": torch.ones(3)},
                                 {"directions": torch.zeros(2, 4, 4, 4, dtype=torch.long), "variance": torch.ones(2)},
                                 {"directions": torch.full((2, 4, 4, 4), float("nan")), "variance": torch.ones(2)}])
def test_latent_edit_refuses_malformed_directions_naming_the_node_that_makes_them(bad):
    """A prompt or another node can send anything as directions; it once raised a bare KeyError or TypeError."""
    z = latents(1, 4, 4, 4)
    before = z.clone()
    with pytest.raises(ValueError, match=refusal("AtelierLatentEdit", "directions is not what Latent Directions "
                                                 r"makes .*; connect the directions output of a Latent Directions")):
        node("AtelierLatentEdit").edit({"samples": z}, bad, 0, 1.0)
    assert torch.equal(z, before)


@pytest.mark.parametrize("mode", ["pca", "PCA-RGB", "", None])
def test_visualize_latent_refuses_an_unknown_mode(mode):
    """Headless prompts skip the dropdown's check; an unknown mode once drew the channels."""
    z = latents(1, 4, 6, 6)
    before = z.clone()
    with pytest.raises(ValueError, match=refusal("AtelierVisualizeLatent", r"unknown mode .*; choose one of "
                                                 "pca-rgb, channels$")):
        node("AtelierVisualizeLatent").show({"samples": z}, mode, 2)
    assert torch.equal(z, before)


def test_visualize_latent_shapes_and_range():
    z = latents(2, 8, 6, 5)
    (rgb,) = node("AtelierVisualizeLatent").show({"samples": z}, "pca-rgb", 4)
    assert rgb.shape == (2, 24, 20, 3) and rgb.min() >= 0 and rgb.max() <= 1
    (grid,) = node("AtelierVisualizeLatent").show({"samples": z}, "channels", 2)
    assert grid.shape[0] == 1 and grid.shape[-1] == 3 and grid.dtype == torch.float32
