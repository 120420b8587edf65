"""The conv models' building blocks: TAESD's residual block, and the layers that make it fast.

``Chain`` and ``Block`` hand each convolution + ReLU to ``fused.conv_relu``; ``UpConv`` is the
decoder's nearest 2x upsample + 3x3 convolution computed at the lower resolution.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .fused import conv_relu


def conv3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1)


class Block(nn.Module):
    """TAESD's residual block: three 3x3 convs, ReLU between, identity skip, ReLU after."""

    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Sequential(conv3(ch, ch), nn.ReLU(), conv3(ch, ch), nn.ReLU(), conv3(ch, ch))

    def forward(self, x):
        a, _, b, _, c = self.conv
        h = conv_relu(conv_relu(x, a.weight, a.bias), b.weight, b.bias)
        return conv_relu(h, c.weight, c.bias, residual=x)


class Chain(nn.Sequential):
    """nn.Sequential that hands each convolution followed by a ReLU to ``conv_relu`` (one fused
    oneDNN call in CPU inference, the same two eager ops otherwise)."""

    def forward(self, x):
        mods = list(self)
        i = 0
        while i < len(mods):
            m = mods[i]
            if isinstance(m, nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU):
                if isinstance(m, UpConv):
                    x = m(x, relu=True)
                else:
                    x = conv_relu(x, m.weight, m.bias, m.padding[0], m.stride[0])
                i += 2
            else:
                x = m(x)
                i += 1
        return x


# For output row parity 0 and 1 of a 2x nearest upsample: which of a 3x3 kernel's rows fall on the
# low-resolution rows above and below (the same holds for columns).
_PHASE_TAPS = ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0))
_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


class UpConv(nn.Conv2d):
    """2x nearest upsample then a 3x3 convolution, computed without the upsample: each output phase
    is a 2x2 convolution of the low-resolution input with summed taps. Same weights and result as
    the textbook pair, 16 instead of 36 multiply-adds per output value and no 4x-sized input copy."""

    def __init__(self, cin, cout):
        super().__init__(cin, cout, 3, 1, 1)

    def reach(self, scale):
        """A nearest 2x upsample, then its 3x3 convolution at the finer scale (conservative)."""
        return scale + (self.kernel_size[0] // 2) * scale / 2, scale / 2

    def forward(self, x, relu=False):
        o = self.out_channels
        taps = self.weight.new_tensor(_PHASE_TAPS)
        k = torch.einsum("apy,oiyx,bqx->aboipq", taps, self.weight, taps).reshape(4 * o, -1, 2, 2)
        # Output (r, c) of phase (a, b) sits at y[..., r + a, c + b]: one convolution for all four phases.
        y = conv_relu(x, k, self.bias.repeat(4)) if relu else F.conv2d(x, k, self.bias.repeat(4), padding=1)
        return _Interleave.apply(y)


def _phase_grid(t):
    """View [B,O,2H,2W] as [B,O,H,2,W,2]: index [..., a, :, b] is output phase (a, b)."""
    b, o, h2, w2 = t.shape
    return t.view(b, o, h2 // 2, 2, w2 // 2, 2)


class _Interleave(torch.autograd.Function):
    """UpConv's four phase maps [B,4O,H+1,W+1] woven into [B,O,2H,2W]. Written out because autograd's
    version of four slice assignments clones the whole gradient once per slice."""

    @staticmethod
    def forward(ctx, y):
        b, o4, h1, w1 = y.shape
        o, h, w = o4 // 4, h1 - 1, w1 - 1
        fmt = torch.channels_last if y.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        ctx.shape, ctx.fmt = y.shape, fmt
        out = torch.empty((b, o, 2 * h, 2 * w), dtype=y.dtype, device=y.device, memory_format=fmt)
        grid = _phase_grid(out)
        for i, (a, c) in enumerate(_PHASES):
            grid[:, :, :, a, :, c] = y[:, i * o:(i + 1) * o, a:a + h, c:c + w]
        return out

    @staticmethod
    def backward(ctx, g):
        b, o4, h1, w1 = ctx.shape
        o, h, w = o4 // 4, h1 - 1, w1 - 1
        gy = torch.empty(ctx.shape, dtype=g.dtype, device=g.device, memory_format=ctx.fmt).zero_()
        grid = _phase_grid(g)
        for i, (a, c) in enumerate(_PHASES):
            gy[:, i * o:(i + 1) * o, a:a + h, c:c + w] = grid[:, :, :, a, :, c]
        return gy


def blocks(ch, n):
    return [Block(ch) for _ in range(n)]


POINTWISE = (nn.ReLU, nn.Identity)   # layers that look at nothing beyond their own value


def reach(module, scale=1.0):
    """How far (in input units) one output value of ``module`` looks beyond its own cell, and the input
    units per output cell after it: the context tiles need (tiling.py). A layer with its own geometry
    says so in a ``reach(scale)`` method; any other layer this does not know is an error, so a new
    layer type cannot silently starve tiles of context."""
    if hasattr(module, "reach"):
        return module.reach(scale)
    if isinstance(module, nn.Conv2d):
        return (module.kernel_size[0] // 2) * module.dilation[0] * scale, scale * module.stride[0]
    if isinstance(module, nn.PixelUnshuffle):
        return (module.downscale_factor - 1) * scale, scale * module.downscale_factor
    if isinstance(module, nn.PixelShuffle):
        return 0.0, scale / module.upscale_factor
    children = list(module.children())
    if not children and not isinstance(module, POINTWISE):
        raise TypeError(f"tiling does not know how far {type(module).__name__} looks; give it a reach(scale) method")
    total = 0.0
    for child in children:   # a chain (Sequential) or a residual block around one
        r, scale = reach(child, scale)
        total += r
    return total, scale
