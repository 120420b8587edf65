"""Damage applied to training inputs so a model learns restoration: it sees the damaged image
and is scored against the clean one. Deterministic in the batch's generator."""
import torch
import torch.nn.functional as F

CORRUPTIONS = ("none", "noise", "holes", "blocks", "blur")


def corrupt(x, kind, strength, generator):
    """x: [B,C,H,W] in 0..1. ``strength`` 0..1 scales how bad the damage is."""
    if kind == "none" or strength <= 0:
        return x
    b, c, h, w = x.shape
    if kind == "noise":  # Gaussian noise, sigma up to 0.3
        noise = torch.randn(x.shape, generator=generator).to(x)
        return (x + 0.3 * strength * noise).clamp(0, 1)
    if kind == "holes":  # 1-4 grey rectangles per image covering up to ~strength of its area
        out = x.clone()
        n = torch.randint(1, 5, (b,), generator=generator)
        for i in range(b):
            for _ in range(int(n[i])):
                hh = max(1, int(h * strength * float(torch.rand(1, generator=generator)) * 0.6))
                ww = max(1, int(w * strength * float(torch.rand(1, generator=generator)) * 0.6))
                t = int(torch.randint(h - hh + 1, (1,), generator=generator))
                l = int(torch.randint(w - ww + 1, (1,), generator=generator))
                out[i, :, t:t + hh, l:l + ww] = 0.5
        return out
    if kind == "blocks":  # JPEG-like: 8x8 block means and coarse colour levels, blended in
        k = min(8, h, w)
        blocky = F.interpolate(F.avg_pool2d(x, k, ceil_mode=True), scale_factor=k, mode="nearest")[..., :h, :w]
        levels = 64 - 56 * strength
        blocky = torch.round(blocky * levels) / levels
        return torch.lerp(x, blocky, strength)
    if kind == "blur":  # lose detail: down- and up-sampling by up to 4x
        f = 1 + 3 * strength
        size = (max(1, int(h / f)), max(1, int(w / f)))   # at least a pixel, even for tiny images
        small = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    raise ValueError(f"unknown corruption {kind!r}; choose one of {', '.join(CORRUPTIONS)}")
