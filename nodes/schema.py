"""Tiny helpers that keep node input declarations one line each, tooltips included.

``advanced=True`` marks a rarely changed input: newer frontends fold it away under the node's advanced
section (older ones ignore the flag)."""
CATEGORY = "Autoencoder Atelier"
AUTOENCODER = "AUTOENCODER"
DATASET = "ATELIER_DATASET"   # models.dataset.WorkFolder: works read lazily during training


def INT(default, lo, hi, tooltip, step=1, **extra):
    return ("INT", {"default": default, "min": lo, "max": hi, "step": step, "tooltip": tooltip, **extra})


def FLOAT(default, lo, hi, tooltip, step=0.01, **extra):
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step, "tooltip": tooltip, **extra})


def STRING(default, tooltip, **extra):
    return ("STRING", {"default": default, "tooltip": tooltip, **extra})


def COMBO(options, tooltip, default=None, **extra):
    return (list(options), {"default": default or options[0], "tooltip": tooltip, **extra})


def LINK(kind, tooltip):
    return (kind, {"tooltip": tooltip})


def SEED(tooltip, **extra):
    return INT(0, 0, 2 ** 32 - 1, tooltip, control_after_generate=True, **extra)
