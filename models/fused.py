"""Convolution + ReLU (and + residual) in one oneDNN call, for CPU inference.

Eager PyTorch runs conv, add and ReLU as separate passes over memory; on a big painting those
passes cost a third of the decode. oneDNN can apply them while the convolution writes its
output: ``torch.ops.mkldnn._convolution_pointwise`` is the op torch.compile itself lowers to.
It is private, so it is used only after a one-time check that it exists and agrees with the
eager ops, only without autograd (it has no backward), only on channels_last CPU tensors, and a
call it cannot take runs the eager ops instead.
"""
import logging

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)
_usable = None   # None: not checked yet


def _autocast_dtype():
    """The CPU autocast dtype in force, or None."""
    try:
        on = torch.is_autocast_enabled("cpu")
        return torch.get_autocast_dtype("cpu") if on else None
    except TypeError:   # torch < 2.4
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None


def _fused(x, weight, bias, padding, stride, residual):
    op = torch.ops.mkldnn._convolution_pointwise
    pad, step, one = [padding, padding], [stride, stride], [1, 1]
    if residual is None:
        return op(x, weight, bias, pad, step, one, 1, "relu", [None], "")
    return op.binary(x, residual, weight, bias, pad, step, one, 1, "add", 1.0, "relu", [None], "")


def _agrees(dtype, tol, g):
    x = torch.randn(1, 8, 6, 6, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    w, b = (torch.randn(8, 8, 3, 3, generator=g) / 8).to(dtype), torch.randn(8, generator=g).to(dtype)
    ref = F.relu(F.conv2d(x.float(), w.float(), b.float(), padding=1) + x.float())
    got = _fused(x, w, b, 1, 1, x).float()
    return got.shape == ref.shape and bool((got - ref).abs().max() <= tol)


def _check():
    """Does the fused op exist here and match the eager ops (float32 and bfloat16)?"""
    global _usable
    g = torch.Generator().manual_seed(0)
    try:
        with torch.autocast("cpu", enabled=False):   # the first call may come inside the codec's autocast
            _usable = _agrees(torch.float32, 1e-4, g) and _agrees(torch.bfloat16, 0.1, g)
    except Exception as e:  # noqa: BLE001  (any failure of a private op means: do not use it)
        log.debug("fused oneDNN convolutions unavailable: %s", e)
        _usable = False
    return _usable


def conv_relu(x, weight, bias, padding=1, stride=1, residual=None):
    """relu(conv2d(x) [+ residual]); fused on the CPU when no gradient is needed."""
    # Only unambiguous channels_last tensors: one that is also plain-contiguous (1x1 pixels, one
    # channel) sends oneDNN down its NCHW path, which has no bf16 residual add.
    if (x.device.type == "cpu" and not torch.is_grad_enabled() and x.dim() == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last) and (_usable or (_usable is None and _check()))):
        dtype = _autocast_dtype() or x.dtype
        if dtype in (torch.float32, torch.bfloat16):
            x, weight, bias = (t.to(dtype) if t is not None else None for t in (x, weight, bias))
            if residual is not None:
                residual = residual.to(dtype).contiguous(memory_format=torch.channels_last)
            try:
                return _fused(x, weight, bias, padding, stride, residual)
            except RuntimeError as e:   # a case this oneDNN cannot fuse: this call runs eager
                log.debug("fused convolution failed for %s %s, using eager ops: %s", tuple(x.shape), x.dtype, e)
    # In place on the fresh conv output (its backward does not need it): no extra full-size tensors.
    y = F.conv2d(x, weight, bias, stride, padding)
    if residual is not None:
        y = y.add_(residual) if residual.dtype == y.dtype else y + residual
    return y.relu_()
