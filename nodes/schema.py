"""Tiny helpers that keep node input declarations one line each, tooltips included."""
import functools
import inspect
import math

CATEGORY = "Autoencoder Atelier"
AUTOENCODER = "AUTOENCODER"


def INT(default, lo, hi, tooltip, step=1, **extra):
    return ("INT", {"default": default, "min": lo, "max": hi, "step": step, "tooltip": tooltip, **extra})


def FLOAT(default, lo, hi, tooltip, step=0.01, **extra):
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step, "tooltip": tooltip, **extra})


def STRING(default, tooltip, **extra):
    return ("STRING", {"default": default, "tooltip": tooltip, **extra})


def COMBO(options, tooltip, default=None):
    return (list(options), {"default": default or options[0], "tooltip": tooltip})


def LINK(kind, tooltip):
    return (kind, {"tooltip": tooltip})


def SEED(tooltip):
    return INT(0, 0, 2 ** 32 - 1, tooltip, control_after_generate=True)


def refuse_non_finite(cls, title):
    """Wrap the node's function so a NaN or infinite FLOAT input is refused with a clear message. ComfyUI's
    own range check lets NaN through (every comparison with NaN is false), and JSON prompts can carry it."""
    fn = getattr(cls, cls.FUNCTION)
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(self, *args, **kwargs):
        spec = cls.INPUT_TYPES()
        floats = {n for part in ("required", "optional") for n, s in (spec.get(part) or {}).items() if s[0] == "FLOAT"}
        for name, value in signature.bind_partial(self, *args, **kwargs).arguments.items():
            if name in floats and isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{title}: {name} must be a finite number, got {value}")
        return fn(self, *args, **kwargs)

    setattr(cls, cls.FUNCTION, checked)
