"""Choosing the fast path: reduced-precision autocast where the hardware runs it faster.

bf16 autocast (weights, optimizer and loss stay float32) is native on recent GPUs (compute
capability 8+). Older NVIDIA GPUs (Volta, Turing: a T4, an RTX 20xx) have fp16 tensor cores but
only emulate bf16, so "auto" trains in fp16 there, with a loss scale against vanishing gradients.
On processors, native bf16 is not the same as fast bf16: AMD Zen 4's AVX-512 BF16 trains
convolutions about 1.7x as fast as float32 and AMX many times faster, but an Intel Xeon whose
AMX is absent or hidden (as in many VMs) trains them ~1.4x slower than float32. So on the CPU "auto"
uses bf16 only where a short measurement finds it clearly faster. Under background load the same
processor measured anywhere from 0.6x to 2.2x, so the measurement is taken once per machine and torch
version and kept (``cache_path()``): the same workflow and seed train the same weights after a restart.
Delete that file to measure again. A resumed training keeps the precision its model was trained in.
"""
import json
import logging
import os
import platform
import time

import torch
import torch.nn.functional as F

from . import files, interrupt
from .networks import ARCHITECTURES

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BF16_MIN_SPEEDUP = 1.2   # far from every processor measured (0.6x, 1.7x, AMX more): "auto" cannot flip-flop
_cpu_speedups = None     # (inference, training) bf16 speed over float32, measured on first use


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


def _conv_seconds(dtype, reps=3):
    """Best forward and backward seconds of two typical 3x3 convolutions (32 and 64 channels)."""
    g = torch.Generator().manual_seed(0)
    layers = []
    for b, c, side in ((2, 32, 64), (2, 64, 32)):
        x = torch.randn(b, c, side, side, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
        w = (torch.randn(c, c, 3, 3, generator=g) * 0.05).to(dtype).contiguous(memory_format=torch.channels_last)
        layers.append((x.requires_grad_(), w.requires_grad_()))
    best = [float("inf"), float("inf")]
    for r in range(reps + 1):   # the first round builds oneDNN's kernels and is not counted
        interrupt.check()
        t0 = time.perf_counter()
        ys = [F.conv2d(x, w, None, 1, 1) for x, w in layers]
        t1 = time.perf_counter()
        torch.autograd.backward(ys, [torch.ones_like(y) for y in ys])
        t2 = time.perf_counter()
        if r:
            best = [min(best[0], t1 - t0), min(best[1], t2 - t1)]
    return best


CACHE_ENV = "ATELIER_PRECISION_CACHE"   # a file path, or "off" to measure in every process


def cache_path():
    path = os.environ.get(CACHE_ENV, "")
    if path == "off":
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return path or os.path.join(base, "autoencoder-atelier", "precision.json")


def machine_key():
    """What the measurement depends on: the processor, its core count and the torch build."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} | {os.cpu_count()} cpus | torch {torch.__version__}"


def _read_cache():
    path = cache_path()
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f).get(machine_key())
        if isinstance(value, list) and len(value) == 2 and all(type(v) is float and 0 <= v < 1000 for v in value):
            return tuple(value)
    except (OSError, TypeError, ValueError, AttributeError, RecursionError):
        pass
    return None


def _write_cache(speedups):
    path = cache_path()
    if path is None:
        return
    try:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
        table = table if isinstance(table, dict) else {}
    except (OSError, ValueError, RecursionError):
        table = {}
    table[machine_key()] = list(speedups)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(table, f, indent=1)
    try:
        files.replace_file(path, write)
    except OSError as e:  # a read-only home: measure again next time
        log.info("could not keep the bf16 measurement in %s (%s)", path, e)


def cpu_bf16_speedups():
    """(inference, training) speed of bf16 over float32 convolutions on this processor: measured
    once per machine and torch version (~0.1 s), fp32 and bf16 in turns, best of each."""
    global _cpu_speedups
    if _cpu_speedups is None and cache_path():
        _cpu_speedups = _read_cache()
    if _cpu_speedups is None:
        try:
            with torch.inference_mode(False), torch.enable_grad(), torch.autocast("cpu", enabled=False):
                fp32, bf16 = [float("inf")] * 2, [float("inf")] * 2
                for _ in range(2):
                    interrupt.check()
                    fp32 = [min(a, b) for a, b in zip(fp32, _conv_seconds(torch.float32))]
                    bf16 = [min(a, b) for a, b in zip(bf16, _conv_seconds(torch.bfloat16))]
            _cpu_speedups = (fp32[0] / bf16[0], sum(fp32) / sum(bf16))
            log.info("bf16 vs float32 convolutions on this processor: %.2fx (inference), %.2fx (training); kept "
                     "in %s", *_cpu_speedups, cache_path())
        except RuntimeError as e:   # a bf16 convolution this torch build cannot run: keep float32
            log.warning("bf16 convolutions failed on this processor, using float32: %s", e)
            _cpu_speedups = (0.0, 0.0)
        _write_cache(_cpu_speedups)
    return _cpu_speedups


def bf16_pays_off(device, training=True):
    """Is bf16 native on ``device`` and, on a processor, measured at least BF16_MIN_SPEEDUP faster?"""
    if not bf16_is_native(device):
        return False
    if torch.device(device).type != "cpu":
        return True
    return cpu_bf16_speedups()[1 if training else 0] >= BF16_MIN_SPEEDUP


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


def slowdown(dtype, device):
    """Why training in autocast ``dtype`` is slower than float32 on ``device`` (for a warning), or None."""
    device = torch.device(device)
    if dtype is None:
        return None
    if not is_native(dtype, device):
        return f"is emulated on this {device.type} and trains several times slower than fp32"
    if dtype is torch.bfloat16 and device.type == "cpu":
        speedup = cpu_bf16_speedups()[1]
        if speedup == 0:
            return "failed a test convolution on this processor"
        if speedup < 1:
            return f"trains {1 / speedup:.1f}x slower than fp32 on this processor (measured)"
    return None


NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}


def resumed_precision(precision, recorded, device):
    """The setting a training run uses: "auto" on a model already trained in ``recorded`` precision keeps it
    (so resuming after a restart trains alike), unless this device only emulates it."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}.get(recorded, "unknown")
    if precision != "auto" or dtype == "unknown" or (dtype is not None and not is_native(dtype, device)):
        return precision
    return recorded


def autocast_dtype(precision, device, architecture=None):
    """The training autocast dtype for a precision setting, or None for plain float32. "auto" keeps
    architectures that do not gain from it (``autocast = False``, dense) in float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if architecture is not None and not ARCHITECTURES[architecture].autocast:
            return None
        if bf16_pays_off(device):
            return torch.bfloat16
        return torch.float16 if torch.device(device).type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def inference_dtype(config, device):
    """Autocast dtype for encoding/decoding: bf16 for conv models where it pays off (their float32
    linear path keeps the result within a fraction of 1/255 of float32); float32 elsewhere."""
    pays = ARCHITECTURES[config["architecture"]].autocast and bf16_pays_off(device, training=False)
    return torch.bfloat16 if pays else None
