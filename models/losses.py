"""Reconstruction losses and quality metrics (images in 0..1, [B,C,H,W])."""
import math

import numpy as np
import torch
import torch.nn.functional as F

LOSSES = ("mse", "l1", "mse+ssim", "sharp")  # sharp: mse + a discriminator's verdict (adversary.py)
SSIM_WEIGHT = 0.05  # (1 - SSIM) is ~50x larger than MSE at useful quality; keep MSE in charge


def _gaussian_window(channels, size=11, sigma=1.5, device=None, dtype=None):
    x = torch.arange(size, device=device, dtype=torch.float32) - size // 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = (g / g.sum()).to(dtype)
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def _ssim_terms(a, b):
    """Mean SSIM and mean contrast-structure term (Wang et al. 2004, 11x11 Gaussian window; a smaller
    window on tiny images)."""
    c = a.shape[1]
    size = min(11, a.shape[-1], a.shape[-2])
    size -= 1 - size % 2
    w = _gaussian_window(c, size, device=a.device, dtype=a.dtype)
    mu_a, mu_b = F.conv2d(a, w, groups=c), F.conv2d(b, w, groups=c)
    saa = F.conv2d(a * a, w, groups=c) - mu_a ** 2
    sbb = F.conv2d(b * b, w, groups=c) - mu_b ** 2
    sab = F.conv2d(a * b, w, groups=c) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    cs = (2 * sab + c2) / (saa + sbb + c2)
    return (((2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)) * cs).mean(), cs.mean()


def ssim(a, b):
    """Mean SSIM (Wang et al. 2004, 11x11 Gaussian window); falls back to a smaller window on tiny images."""
    return _ssim_terms(a, b)[0]


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim(a, b):
    """Multi-scale SSIM (Wang et al. 2003): contrast-structure at the finer scales, full SSIM at the
    coarsest; as many of the five scales as the image size allows (at least 4 pixels a side)."""
    levels = [w for i, w in enumerate(MS_SSIM_WEIGHTS) if min(a.shape[-2:]) >> i >= 4]
    out = 1.0
    for i, weight in enumerate(levels):
        full, cs = _ssim_terms(a, b)
        out = out * (full if i == len(levels) - 1 else cs).clamp_min(0) ** (weight / sum(levels))
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return out


def reconstruction_loss(kind, recon, target):
    if kind in ("mse", "sharp"):
        return F.mse_loss(recon, target)
    if kind == "l1":
        return F.l1_loss(recon, target)
    if kind == "mse+ssim":
        return F.mse_loss(recon, target) + SSIM_WEIGHT * (1.0 - ssim(recon, target))
    raise ValueError(f"unknown loss {kind!r}; expected one of {', '.join(LOSSES)}")


def psnr(recon, target):
    """PSNR in dB over the whole batch (peak 1.0), on images clamped to 0..1."""
    return psnr_of_mse(float(F.mse_loss(recon.clamp(0, 1).float(), target.float())))


def psnr_of_mse(mse):
    return 10 * math.log10(1.0 / max(mse, 1e-12))



def smoothed_loss(history):
    """The loss at each step averaged over the steps before it (20, or 2% of the run if longer): the line the
    loss curve draws over the raw values. Its end is the run's one "last loss" figure (loss curve and model
    card alike), since a single step's loss is mostly the noise of which images that step drew."""
    v = np.asarray(history, dtype=np.float64)
    window = max(20, len(v) // 50)
    sums = np.concatenate([[0.0], np.cumsum(v)])
    end = np.arange(1, len(v) + 1)
    start = np.maximum(0, end - window)
    return (sums[end] - sums[start]) / (end - start)


def last_loss(history):
    return float(smoothed_loss(history)[-1]) if len(history) else None


def loss_label(value):
    return f"last loss {value:.3g}"
