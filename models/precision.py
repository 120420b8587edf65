"""Choosing the training fast path: reduced-precision autocast where the hardware runs it natively.

bf16 autocast (weights, optimizer and loss stay float32) roughly doubles CPU training speed on
processors with AVX-512 BF16 or AMX, and is native on recent GPUs (compute capability 8+).
Older NVIDIA GPUs (Volta, Turing: a T4, an RTX 20xx) have fp16 tensor cores but only emulate bf16,
so "auto" trains in fp16 there, with a loss scale against vanishing gradients. Elsewhere "auto"
keeps float32: emulated half precision is slower.
"""
import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def bf16_is_native(device):
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:   # torch < 2.3: no emulation check, and it answers by compute capability
            return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return bool(probe and probe()) and torch.backends.mkldnn.is_available()
    return False


def is_native(dtype, device):
    """Does ``device`` compute in ``dtype`` natively (not emulated, which is slower than float32)?
    fp16 emulated on a processor without AMX-FP16 trains ~20x slower than fp32 (2 Zen 4 cores)."""
    if dtype is torch.bfloat16:
        return bf16_is_native(device)
    if dtype is torch.float16:
        device = torch.device(device)
        probe = getattr(torch.cpu, "_is_amx_fp16_supported", None)
        return device.type == "cuda" or (device.type == "cpu" and bool(probe and probe()))
    return True


def autocast_dtype(precision, device, architecture="conv"):
    """The training autocast dtype for a precision setting, or None for plain float32. "auto" keeps
    dense models in float32: their small matrix products gain less than the casts cost."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if architecture == "dense":
            return None
        if bf16_is_native(device):
            return torch.bfloat16
        return torch.float16 if torch.device(device).type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def inference_dtype(config, device):
    """Autocast dtype for encoding/decoding: bf16 for conv models where native (their float32 linear
    path keeps the result within a fraction of 1/255 of float32); float32 elsewhere."""
    return torch.bfloat16 if config["architecture"] != "dense" and bf16_is_native(device) else None
