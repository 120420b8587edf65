"""The architecture config: one JSON-serialisable dict that fully rebuilds a model.

Every config (from a node, or from a file written by a stranger) passes through
``validate_config`` before anything is allocated, so absurd sizes are refused early.
"""
import math

ARCHITECTURES = ("dense", "conv", "conv-vae")
DOWNSCALES = (1, 2, 4, 8, 16)
CHANNELS = (1, 3)

# (min, max) for each integer field. Generous enough for real work, small enough that
# a hostile file cannot make us allocate gigabytes.
LIMITS = {
    "latent_channels": (1, 256),
    "width": (4, 512),
    "image_size": (4, 512),   # dense only: the fixed input side
    "blocks": (0, 8),         # residual blocks per scale (conv)
}
MAX_PARAMETERS = 200_000_000


class ConfigError(ValueError):
    """A config (from a node or a file) that cannot describe one of our models."""


def default_config(architecture="conv", **overrides):
    base = {
        "architecture": architecture,
        "latent_channels": 8,
        "downscale": 8,
        "width": 32,
        "blocks": 1,
        "image_size": 64,
        "channels": 3,
    }
    if architecture == "dense":
        base.update(latent_channels=16, downscale=1, width=64, image_size=28)
    base.update(overrides)
    return validate_config(base)


def _int_field(cfg, key):
    value = cfg.get(key)
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
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    out = {"architecture": arch}
    for key in ("latent_channels", "width", "image_size", "blocks"):
        out[key] = _int_field(cfg, key)
    downscale, channels = cfg.get("downscale"), cfg.get("channels")
    if type(downscale) is not int or downscale not in DOWNSCALES:
        raise ConfigError(f"downscale must be one of {DOWNSCALES}, got {downscale!r}")
    if type(channels) is not int or channels not in CHANNELS:
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    out["downscale"], out["channels"] = downscale, channels
    if arch != "dense" and out["image_size"] % downscale:
        # image_size is only the training/preview size for conv models; keep it consistent.
        out["image_size"] = max(downscale, out["image_size"] // downscale * downscale)
    n = estimate_parameters(out)
    if n > MAX_PARAMETERS:
        raise ConfigError(f"this config would need {n:,} parameters (limit {MAX_PARAMETERS:,}); "
                          "lower width, latent_channels or image_size")
    return out


def conv_channels(cfg):
    """Channels at each scale of a conv model: doubling with depth, capped at 4x width."""
    levels = max(1, int(math.log2(cfg["downscale"])))
    return [min(cfg["width"] * 2 ** i, cfg["width"] * 4) for i in range(levels)]


def estimate_parameters(cfg):
    """Close upper estimate of the parameter count, computed without allocating."""
    if cfg["architecture"] == "dense":
        d, w, c = cfg["channels"] * cfg["image_size"] ** 2, cfg["width"], cfg["latent_channels"]
        return 2 * (d * w + w * (w // 2) + (w // 2) * c) + 2 * d + 4 * w + 2 * c
    chans, z = conv_channels(cfg), cfg["latent_channels"]
    per_level = sum(2 * 9 * ch * ch * (3 * cfg["blocks"] + 1) for ch in chans)
    linear = 2 * cfg["channels"] * cfg["downscale"] ** 2 * (z + 1)   # the 1x1 block projection and its mirror
    return per_level + 2 * 9 * chans[-1] * z * 2 + 12 * 9 * chans[0] * 2 + linear


def latent_shape(cfg, height, width):
    """Shape [C, h, w] of the latent of one image of the given size."""
    if cfg["architecture"] == "dense":
        return [cfg["latent_channels"], 1, 1]
    f = cfg["downscale"]
    return [cfg["latent_channels"], height // f, width // f]


def compression(cfg):
    """How many input values each latent value stands for (for display)."""
    if cfg["architecture"] == "dense":
        return cfg["channels"] * cfg["image_size"] ** 2 / cfg["latent_channels"]
    return cfg["channels"] * cfg["downscale"] ** 2 / cfg["latent_channels"]
