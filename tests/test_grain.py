"""Grain synthesis (models/grain.py): loss sharp's models paint the detail their latents cannot hold back as grain."""
import json

import pytest
import torch

from autoencoder_atelier.models import codec, storage
from autoencoder_atelier.models.grain import MAX_GAIN, activity, add_grain, fit_gain
from autoencoder_atelier.models.pyramid import blur
from autoencoder_atelier.models.train import TrainSettings, train

from helpers import call, procedural, resave, tiny_ae
from swd import finest_level_swd

SHARP = dict(batch_size=4, learning_rate=5e-3, seed=0, loss="sharp", sharp_warmup=10)


@pytest.fixture(scope="module")
def textured():
    """Procedural works with fine texture ([B,3,H,W]) and a blurred copy: a decoder that lost the finest detail."""
    x = procedural(24, 48, seed=3).movedim(-1, 1)
    x = (x + 0.12 * (torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) - 0.5)).clamp(0, 1)
    return x, blur(blur(x))


@pytest.fixture(scope="module")
def sharp_model():
    return train(tiny_ae(), procedural(8, 32), TrainSettings(steps=15, **SHARP))


def test_grain_brings_the_finest_detail_statistics_of_a_blurred_set_toward_the_originals(textured):
    x, blurred = textured
    gain = fit_gain(blurred, x)
    assert 0 < gain < MAX_GAIN
    grained = add_grain(blurred, gain)
    plain_swd = finest_level_swd(blurred.movedim(1, -1), x.movedim(1, -1), descriptors=2048)
    grain_swd = finest_level_swd(grained.movedim(1, -1), x.movedim(1, -1), descriptors=2048)
    assert grain_swd < 0.8 * plain_swd, (grain_swd, plain_swd)
    # and it costs little in pixel error (GRAIN_SHARE of the lost amplitude: MSE up by about its square)
    mse = [float(((y - x) ** 2).mean()) for y in (blurred, grained)]
    assert mse[1] < 1.5 * mse[0], mse


def test_a_decoder_that_lost_nothing_gets_no_grain(textured):
    x, _ = textured
    assert fit_gain(x, x) == 0.0


def test_flat_regions_stay_flat_and_the_grain_is_grey():
    y = torch.full((2, 3, 48, 64), 0.5)
    y[:, :, :, 40:] = torch.linspace(0, 1, 3)[None, :, None, None] * (torch.arange(24) % 2)   # busy on the right
    out = add_grain(y, 2.0)
    assert torch.equal(out[..., :16], y[..., :16])   # far from the busy part (activity reaches ~20 px): untouched
    added = out - y
    inside = ((out > 0) & (out < 1)).all(1, keepdim=True).expand_as(y)   # pixels clamped in no channel
    assert added.abs().max() > 0.01
    diffs = (added - added.mean(1, keepdim=True)).abs()[inside]   # the same amount in every channel
    assert diffs.max() < 1e-6


def test_amount_zero_and_models_without_grain_decode_exactly_as_before(sharp_model):
    z = codec.encode(sharp_model, procedural(2, 32))
    assert sharp_model.state.summary["grain"] > 0
    no_grain = sharp_model.clone()
    del no_grain.state.summary["grain"]
    bare = call("AtelierDecode", autoencoder=no_grain, latent=z)[0]
    assert torch.equal(call("AtelierDecode", autoencoder=sharp_model, latent=z, grain=0.0)[0], bare)
    with_grain = call("AtelierDecode", autoencoder=sharp_model, latent=z)[0]
    assert not torch.equal(with_grain, bare)
    assert torch.equal(with_grain, call("AtelierDecode", autoencoder=sharp_model, latent=z)[0])   # repeatable
    mse = train(tiny_ae(), procedural(8, 32), TrainSettings(steps=5, batch_size=4, seed=0))
    zm = codec.encode(mse, procedural(2, 32))
    assert "grain" not in mse.state.summary
    assert torch.equal(call("AtelierDecode", autoencoder=mse, latent=zm, grain=2.0)[0],
                       call("AtelierDecode", autoencoder=mse, latent=zm, grain=0.0)[0])


def test_grain_is_fitted_to_the_decoder_it_belongs_to(sharp_model):
    """Further training with another loss changes the decoder: its grain goes, and sharp fits a new one."""
    then_mse = train(sharp_model, procedural(8, 32), TrainSettings(steps=3, **{**SHARP, "loss": "mse"}))
    assert "grain" not in then_mse.state.summary and sharp_model.state.summary["grain"] > 0   # input unchanged
    again = train(then_mse, procedural(8, 32), TrainSettings(steps=3, **SHARP))
    assert again.state.summary["grain"] > 0


def test_grain_travels_in_the_file_and_a_hostile_value_is_dropped(sharp_model, tmp_path):
    path = storage.save_autoencoder(sharp_model, tmp_path / "sharp.safetensors")
    assert storage.load_autoencoder(path).state.summary["grain"] == sharp_model.state.summary["grain"]
    assert f"grain: {sharp_model.state.summary['grain']:.2f}" in storage.read_card(path)
    for bad in (-1.0, 1e9, float("nan"), "0.5", True, [1.0]):
        summary = {**sharp_model.state.summary, "grain": bad}
        p = resave(path, tmp_path / "edited.safetensors",
                   meta={"training": json.dumps({"step": sharp_model.state.step, "summary": summary})})
        loaded = storage.load_autoencoder(p)
        assert "grain" not in loaded.state.summary, bad
        z = codec.encode(loaded, procedural(1, 32))
        assert torch.isfinite(codec.decode(loaded, z)).all()


def test_activity_follows_the_busy_part_of_a_picture():
    y = torch.zeros(1, 3, 64, 64)
    y[..., 32:, :] = (torch.arange(64) % 4 < 2).float()   # stripes of 2 px below, flat above
    a = activity(y)[0, 0]
    assert a[:8].max() < 1e-6 and a[48:].min() > 0.01   # its reach is about 20 px


def test_train_s_reconstructions_show_the_grain_decode_will_add():
    from autoencoder_atelier.models.train import Trainer
    for loss, grained in (("sharp", True), ("mse", False)):
        t = Trainer(tiny_ae(), procedural(8, 32), TrainSettings(steps=12, **{**SHARP, "loss": loss}))
        out = t.run()
        originals, shown = t.reconstructions
        with torch.no_grad():
            plain = out.model.reconstruct(originals.movedim(-1, 1)).movedim(1, -1)
        assert torch.equal(shown, plain) != grained, loss
        if grained:
            assert torch.equal(shown, add_grain(plain.movedim(-1, 1), out.state.summary["grain"]).movedim(1, -1))


@pytest.mark.parametrize("amount", [-0.5, 2.5, float("nan"), float("inf"), "1"])
def test_decode_refuses_a_grain_outside_its_range_before_decoding(sharp_model, amount, monkeypatch):
    z = codec.encode(sharp_model, procedural(1, 32))
    from autoencoder_atelier.models import tiling
    monkeypatch.setattr(tiling, "decode", None)   # refused before any decoding
    refusal = r"^Decode Latent with Autoencoder \(Atelier\): grain (is .*; use 0\.\.2|must be a finite)"
    with pytest.raises(ValueError, match=refusal):
        call("AtelierDecode", autoencoder=sharp_model, latent=z, grain=amount)
