"""The architecture config: one JSON-serialisable dict that fully rebuilds a model.

Every config (from a node, or from a file written by a stranger) passes through
``validate_config`` before anything is allocated, so absurd sizes are refused early.
"""
import functools

import torch

from .errors import AtelierError
from .networks import ARCHITECTURES, build_network

DOWNSCALES = (1, 2, 4, 8, 16)
CHANNELS = (1, 3)

# (min, max) for each integer field. Generous enough for real work, small enough that
# a hostile file cannot make us allocate gigabytes.
LIMITS = {
    "latent_channels": (1, 256),
    "width": (4, 512),
    "image_size": (4, 512),   # the fixed input side of fixed-size (dense) models, else the preview size
    "blocks": (0, 8),         # residual blocks per scale (conv)
    "linear_reach": (0, 1),   # latent cells each side the conv models' linear decoder reads (networks.py)
}
MAX_PARAMETERS = 200_000_000


class ConfigError(AtelierError):
    """A config (from a node or a file) that cannot describe one of our models."""


def default_config(architecture="conv", **overrides):
    base = {
        "architecture": architecture,
        "latent_channels": 8,
        "downscale": 8,
        "width": 32,
        "blocks": 1,
        "linear_reach": 1,
        "image_size": 64,
        "channels": 3,
    }
    network = ARCHITECTURES.get(architecture) if isinstance(architecture, str) else None
    base.update(network.defaults if network else {}, **overrides)
    return validate_config(base)


def _int_field(cfg, key, missing=None):
    value = cfg.get(key, missing)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"config field '{key}' must be an integer, got {value!r}")
    lo, hi = LIMITS[key]
    if not lo <= value <= hi:
        raise ConfigError(f"config field '{key}' is {value}, outside the allowed range {lo}..{hi}")
    return value


def validate_config(cfg):
    """Return a clean copy of ``cfg`` or raise ConfigError saying what is wrong."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"config must be a JSON object, got {type(cfg).__name__}")
    arch = cfg.get("architecture")
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    out = {"architecture": arch}
    for key in ("latent_channels", "width", "image_size", "blocks"):
        out[key] = _int_field(cfg, key)
    downscale, channels = cfg.get("downscale"), cfg.get("channels")
    if type(downscale) is not int or downscale not in DOWNSCALES:
        raise ConfigError(f"downscale must be one of {DOWNSCALES}, got {downscale!r}")
    if type(channels) is not int or channels not in CHANNELS:
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    # A fixed-size (dense) model's latent is one vector: it has no downscale.
    out["downscale"], out["channels"] = 1 if ARCHITECTURES[arch].fixed_size else downscale, channels
    # Files from before lapped decoding have no linear_reach: their linear decoder reads one cell (0).
    out["linear_reach"] = 0 if ARCHITECTURES[arch].fixed_size else _int_field(cfg, "linear_reach", 0)
    if out["image_size"] % out["downscale"]:
        # image_size is only the training/preview size for conv models; keep it consistent.
        out["image_size"] = max(downscale, out["image_size"] // downscale * downscale)
    n = parameter_count(out)
    if n > MAX_PARAMETERS:
        raise ConfigError(f"this config would need {n:,} parameters (limit {MAX_PARAMETERS:,}); "
                          "lower width, latent_channels or image_size")
    return out


def parameter_count(cfg):
    """Exact parameter count of the network a (range-checked) config builds, from a build on the meta device
    (no memory, no weights initialised), so a new architecture needs no hand-derived formula."""
    return _parameter_count(tuple(sorted(cfg.items())))


@functools.lru_cache(maxsize=256)
def _parameter_count(items):
    with torch.device("meta"):
        return sum(p.numel() for p in build_network(dict(items)).parameters())
