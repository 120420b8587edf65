"""The conv models' building blocks, written plainly as in TAESD: a 3x3 convolution, the residual
block, and upsampling as a nearest 2x upsample then a 3x3 convolution. ``speedups.py`` swaps in
faster modules that compute the same function.
"""
import torch.nn as nn
import torch.nn.functional as F


def conv3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1)


class Block(nn.Module):
    """TAESD's residual block: three 3x3 convs, ReLU between, identity skip, ReLU after."""

    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Sequential(conv3(ch, ch), nn.ReLU(), conv3(ch, ch), nn.ReLU(), conv3(ch, ch))

    def forward(self, x):
        return F.relu(self.conv(x) + x)


def blocks(ch, n):
    return [Block(ch) for _ in range(n)]


def upsample():
    return nn.Upsample(scale_factor=2, mode="nearest")


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
    if isinstance(module, nn.Upsample):   # nearest: an output looks at most one input cell away (conservative)
        return scale, scale / module.scale_factor
    children = list(module.children())
    if not children and not isinstance(module, POINTWISE):
        raise TypeError(f"tiling does not know how far {type(module).__name__} looks; give it a reach(scale) method")
    total = 0.0
    for child in children:   # a chain (Sequential) or a residual block around one
        r, scale = reach(child, scale)
        total += r
    return total, scale
