"""validate_config: the gate every config (from a node or a stranger's file) passes through."""
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autoencoder_atelier.models.config import (LIMITS, MAX_PARAMETERS, ConfigError, default_config, parameter_count,
                                               validate_config)
from autoencoder_atelier.models.networks import ARCHITECTURES, build_network


def good(**overrides):
    cfg = {"architecture": "conv", "latent_channels": 8, "downscale": 8, "width": 32, "blocks": 1,
           "image_size": 64, "channels": 3, "linear_reach": 1}
    cfg.update(overrides)
    return cfg


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_default_config_is_valid_and_stable(arch):
    cfg = default_config(arch)
    assert cfg["architecture"] == arch
    assert validate_config(cfg) == cfg
    assert set(cfg) == {"architecture", "latent_channels", "downscale", "width", "blocks", "image_size", "channels",
                        "linear_reach"}


def test_dense_defaults_are_the_mnist_mlp():
    cfg = default_config("dense")
    assert (cfg["image_size"], cfg["width"], cfg["latent_channels"], cfg["downscale"]) == (28, 64, 16, 1)


def test_validate_returns_clean_copy_without_unknown_keys():
    raw = good(evil="rm -rf /", note=[1, 2])
    out = validate_config(raw)
    assert "evil" not in out and "note" not in out
    out["width"] = 4
    assert raw["width"] == 32


@pytest.mark.parametrize("field,value", [
    ("latent_channels", 10 ** 9), ("latent_channels", 0), ("latent_channels", -8), ("latent_channels", 257),
    ("width", 10 ** 6), ("width", 3), ("width", 513), ("width", -1),
    ("image_size", 10 ** 6), ("image_size", 0), ("image_size", 513),
    ("blocks", 9), ("blocks", -1), ("blocks", 10 ** 12), ("linear_reach", 2), ("linear_reach", -1),
])
def test_out_of_range_integers_are_refused(field, value):
    with pytest.raises(ConfigError) as e:
        validate_config(good(**{field: value}))
    msg = str(e.value)
    assert field in msg and str(value) in msg
    lo, hi = LIMITS[field]
    assert f"{lo}..{hi}" in msg


@pytest.mark.parametrize("field", ["latent_channels", "width", "image_size", "blocks", "linear_reach"])
@pytest.mark.parametrize("value", [True, False, 8.0, 8.5, "8", None, [8], {"v": 8}])
def test_wrong_types_for_integer_fields_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        validate_config(good(**{field: value}))


@pytest.mark.parametrize("field", ["latent_channels", "width", "image_size", "blocks", "downscale", "channels",
                                   "architecture"])
def test_missing_fields_are_refused(field):
    cfg = good()
    del cfg[field]
    with pytest.raises(ConfigError):
        validate_config(cfg)


def test_configs_from_before_lapped_decoding_keep_their_one_cell_linear_decoder():
    old = good()
    del old["linear_reach"]
    assert validate_config(old)["linear_reach"] == 0
    assert build_network(validate_config(old)).dec_linear.kernel_size == (1, 1)
    assert build_network(validate_config(good())).dec_linear.kernel_size == (3, 3)
    assert validate_config(good(architecture="dense"))["linear_reach"] == 0   # no grid, no neighbours


@pytest.mark.parametrize("value", [3, 0, 32, -8, 1024, True, "8", None, 2.5])
def test_bad_downscale_is_refused(value):
    with pytest.raises(ConfigError, match="downscale"):
        validate_config(good(downscale=value))


@pytest.mark.parametrize("value", [0, 2, 4, True, False, "3", None])
def test_bad_channels_are_refused(value):
    with pytest.raises(ConfigError, match="channels"):
        validate_config(good(channels=value))


@pytest.mark.parametrize("field,value", [("downscale", 8.0), ("channels", 3.0)])
def test_float_downscale_and_channels_are_refused(field, value):
    with pytest.raises(ConfigError):
        validate_config(good(**{field: value}, image_size=60))


@pytest.mark.parametrize("arch", ["transformer", "CONV", "", None, 3, ["conv"]])
def test_unknown_architecture_is_refused(arch):
    with pytest.raises(ConfigError, match="architecture"):
        validate_config(good(architecture=arch))


@pytest.mark.parametrize("cfg", [None, [], "conv", 42, ("conv",)])
def test_non_dict_config_is_refused(cfg):
    with pytest.raises(ConfigError, match="JSON object"):
        validate_config(cfg)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("cfg", [
    good(architecture="dense", image_size=512, width=512, downscale=1),
    good(architecture="conv", width=512, blocks=8, downscale=16, latent_channels=256),
    good(architecture="conv-vae", width=512, blocks=8, downscale=16, latent_channels=256),
])
def test_parameter_budget_refuses_huge_models_without_allocating(cfg, monkeypatch):
    from autoencoder_atelier.models import config, networks
    built = []

    def build_on_meta_only(c):
        if torch.empty(0).device.type != "meta":
            pytest.fail("allocated a model")
        built.append(c)
        return networks.build_network(c)

    monkeypatch.setattr(config, "build_network", build_on_meta_only)
    config._parameter_count.cache_clear()
    with pytest.raises(ConfigError, match="parameters"):
        validate_config(cfg)
    assert built   # counted on the meta device (checked above), so nothing was allocated
    assert parameter_count({**cfg, "image_size": cfg["image_size"]}) > MAX_PARAMETERS


def test_conv_image_size_snaps_to_downscale_but_dense_does_not():
    assert validate_config(good(image_size=60, downscale=8))["image_size"] == 56
    assert validate_config(good(image_size=4, downscale=16))["image_size"] == 16
    assert validate_config(good(architecture="dense", image_size=30, downscale=8))["image_size"] == 30


@pytest.mark.parametrize("arch,ds,w,blocks,z,ch", [
    (a, ds, w, b, z, ch)
    for a, ds, w, b, z, ch in itertools.product(["conv", "conv-vae"], [1, 2, 4, 8, 16], [4, 16, 64], [0, 2],
                                                [1, 16], [1, 3])
] + [("dense", 1, w, 1, z, ch) for w, z, ch in itertools.product([4, 64], [1, 16], [1, 3])])
def test_parameter_count_is_exact(arch, ds, w, blocks, z, ch):
    cfg = validate_config(good(architecture=arch, downscale=ds, width=w, blocks=blocks, latent_channels=z,
                               channels=ch, image_size=32))
    actual = sum(p.numel() for p in build_network(cfg).parameters())
    assert actual == parameter_count(cfg)  # the parameter budget must never let a bigger model through


def test_latent_shape_and_compression():
    with torch.device("meta"):
        conv = build_network(validate_config(good(downscale=8, latent_channels=4)))
        dense = build_network(validate_config(good(architecture="dense", image_size=28, latent_channels=16,
                                                   channels=1, downscale=1)))
    assert conv.latent_shape(64, 48) == [4, 8, 6]
    assert conv.compression() == 3 * 64 / 4
    assert dense.latent_shape(28, 28) == [16, 1, 1]
    assert dense.compression() == 28 * 28 / 16


config_dicts = st.fixed_dictionaries({
    "architecture": st.sampled_from(tuple(ARCHITECTURES) + ("gan",)),
    "latent_channels": st.integers(-4, 300),
    "width": st.integers(-4, 600),
    "image_size": st.integers(-4, 600),
    "blocks": st.integers(-2, 10),
    "linear_reach": st.integers(-1, 2),
    "downscale": st.sampled_from([0, 1, 2, 3, 4, 8, 16, 32]),
    "channels": st.sampled_from([0, 1, 2, 3, 4]),
})


@settings(max_examples=300, deadline=None)
@given(config_dicts)
def test_validate_config_either_refuses_or_returns_an_idempotent_in_range_config(cfg):
    try:
        out = validate_config(cfg)
    except ConfigError as e:
        assert str(e)
        return
    assert validate_config(out) == out
    for key, (lo, hi) in LIMITS.items():
        assert type(out[key]) is int and lo <= out[key] <= hi
    assert parameter_count(out) <= MAX_PARAMETERS
    if out["architecture"] != "dense":
        assert out["image_size"] % out["downscale"] == 0
