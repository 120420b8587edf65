"""Choosing the training fast path: bf16 autocast where the hardware runs it natively.

bf16 autocast (weights, optimizer and loss stay float32) roughly doubles CPU training speed on
processors with AVX-512 BF16 or AMX, and is native on recent GPUs. Elsewhere it would be
emulated and slower, so "auto" keeps float32 there.
"""
import torch

PRECISIONS = ("auto", "fp32", "bf16")


def bf16_is_native(device):
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return bool(probe and probe()) and torch.backends.mkldnn.is_available()
    return False


def autocast_dtype(precision, device, architecture="conv"):
    """The autocast dtype for a precision setting, or None for plain float32. "auto" keeps dense
    models in float32: their small matrix products gain less than the casts cost."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32" or (precision == "auto" and (architecture == "dense" or not bf16_is_native(device))):
        return None
    return torch.bfloat16


def inference_dtype(config, device):
    """Autocast dtype for encoding/decoding: bf16 for conv models where native (their float32 linear
    path keeps the result within a fraction of 1/255 of float32)."""
    return autocast_dtype("auto", device, config["architecture"])
