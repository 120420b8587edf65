"""Laplacian pyramids (Burt & Adelson 1983) with ProGAN's 5-tap binomial filter: the bands that the SWD metric
(bench/swd.py) compares and that grain synthesis (grain.py) measures. Images [B,C,H,W]."""
import torch
import torch.nn.functional as F

_KERNEL = torch.tensor([1., 4., 6., 4., 1.]) / 16


def blur(x):
    """The binomial filter, separable, edges mirrored: as sums of shifted slices, since a depthwise conv2d on the
    CPU unrolls 5 copies of the picture (im2col); this holds the padded copy and two more."""
    h, w = x.shape[-2:]
    p = F.pad(x, (2, 2, 2, 2), mode="reflect")
    k = _KERNEL.tolist()
    rows = p[..., 0:w] * k[0]
    for i in range(1, 5):
        rows.add_(p[..., i:i + w], alpha=k[i])
    del p
    out = rows[..., 0:h, :] * k[0]
    for i in range(1, 5):
        out.add_(rows[..., i:i + h, :], alpha=k[i])
    return out


def up(x):
    """Zero-insertion upsampling then the filter (x4 to keep the brightness): ProGAN's pyr_up."""
    b, c, h, w = x.shape
    z = x.new_zeros(b, c, h * 2, w * 2)
    z[:, :, ::2, ::2] = x * 4
    return blur(z)


def laplacian_pyramid(x, levels):
    """[B,C,H,W] -> ``levels`` band-pass images, finest first; the last is the low-pass remainder."""
    out = []
    for _ in range(levels - 1):
        down = blur(x)[:, :, ::2, ::2]
        out.append(x - up(down)[:, :, :x.shape[2], :x.shape[3]])
        x = down
    return out + [x]
