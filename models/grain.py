"""Grain synthesis: the fine detail a decoder cannot know, painted back as grain where the picture is busy.

At 48x a latent cell holds 4 numbers for an 8x8 block of 192 pixel values, so the brushwork itself is gone and a
decoder trained on pixels paints its mean: a smooth picture. Video codecs meet the same loss with grain synthesis
(AV1's film grain): measure how much fine detail coding removes and add seeded noise of that amplitude when
decoding. Here the grain's amplitude follows the decoded picture's own activity (the local RMS of its second
Laplacian band), so busy brushwork gets grain and a flat sky stays flat; one gain per model, fitted on the
artist's works when `sharp` training ends, says how much fine detail this decoder loses per unit of activity.

Measured (bench/RESULTS.md, 48x): mse's reconstructions plus grain at GRAIN_SHARE of the fitted amplitude halve
the finest-level SWD for -0.4 dB and add no latent-grid pattern (grain of one amplitude everywhere does 0.7x at
best; the exact lost band, 0.2x). The noise is one fixed pattern (seed 0) per picture size, the same in every
channel (grey grain, as in the works; coloured speckles read as noise), so decoding is repeatable and a walk's
frames share their grain.
"""
import math

import torch
import torch.nn.functional as F

from .errors import AtelierError
from .pyramid import blur, laplacian_pyramid

GRAIN_SHARE = 0.4   # of the lost detail's fitted amplitude: 0.3 scored 0.5x mse's finest SWD (-0.25 dB), 0.5 0.33x
                    # (-0.65 dB); uncorrelated detail costs its own power in MSE, so the full amount costs ~2.3 dB
MAX_GAIN = 20.0     # a fitted gain is ~1-3; more in a file is hostile or damaged
MAX_AMOUNT = 2.0    # Decode's grain input: up to twice the measured grain
WINDOW = 9          # local RMS window (pixels of the band it is taken on)
MIN_SIDE = 8        # smaller pictures have no second band to measure
WORKING_COPIES = 1  # add_grain's memory beyond its result, in pictures (measured 0.55 of one at 2048x2048)


def _local_rms(band):
    """[B,C,H,W] -> [B,1,H,W]: RMS over channels and a WINDOW x WINDOW neighbourhood."""
    return F.avg_pool2d(band.square().mean(1, keepdim=True), WINDOW, 1, WINDOW // 2, count_include_pad=False).sqrt()


def activity(x):
    """How busy each pixel's surroundings are ([B,C,H,W] -> [B,1,H,W]): the local RMS of the second Laplacian band
    (detail of 2-4 px, which every decoder keeps some of), back at full resolution."""
    half = blur(x.float())[..., ::2, ::2]    # the pyramid's first step: its full-size band is not needed here
    mid = laplacian_pyramid(half, 2)[0]
    return F.interpolate(_local_rms(mid), size=x.shape[-2:], mode="bilinear", align_corners=False)


def fit_gain(decoded, originals):
    """The amplitude of the finest detail the decoder lost per unit of activity, over a set of works ([B,C,H,W],
    the originals and their decoded reconstructions). 0.0 for pictures too small to measure."""
    if min(decoded.shape[-2:]) < MIN_SIDE:
        return 0.0
    lost = laplacian_pyramid(originals.float() - decoded.float(), 2)[0]   # the band is linear: one pyramid
    act = activity(decoded).mean()
    gain = float(_local_rms(lost).mean() / act) if act > 0 else 0.0
    return min(max(gain, 0.0), MAX_GAIN)


def noise(height, width):
    """The grain pattern of a picture of this size: seeded, so a decode is repeatable."""
    return torch.randn((1, 1, height, width), generator=torch.Generator().manual_seed(0))


def check_amount(amount):
    """Decode's grain input, refused before any work when out of range."""
    if not (isinstance(amount, (int, float)) and math.isfinite(amount) and 0 <= amount <= MAX_AMOUNT):
        raise AtelierError(f"grain is {amount!r}; use 0..{MAX_AMOUNT:g} (1 = the grain measured on your works, "
                           "0 = off)")


def add_grain(images, gain, amount=1.0):
    """Decoded pictures [B,C,H,W] in 0..1 with grain: ``amount`` x GRAIN_SHARE x ``gain`` x activity x the
    pattern, clamped, as a new batch (one picture at a time, so the rest of its memory is WORKING_COPIES of one)."""
    check_amount(amount)
    strength = float(amount) * GRAIN_SHARE * float(gain)
    if strength <= 0 or min(images.shape[-2:]) < MIN_SIDE:
        return images
    pattern = noise(*images.shape[-2:]).to(images.device)
    out = torch.empty(images.shape, dtype=torch.float32, device=images.device)
    for y, o in zip(images, out):
        torch.addcmul(y, activity(y[None])[0], pattern[0], value=strength, out=o).clamp_(0, 1)
    return out
