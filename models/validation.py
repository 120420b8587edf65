"""The validation split: a few of the artist's works held back from training and scored as it goes, so
the weights kept are those that paint works the model never saw best (early stopping). Without it a
small model trained for thousands of steps on tens of images memorises them and ends up worse on new
works than the linear code it started from."""
import torch

from .losses import psnr_of_mse

MIN_IMAGES = 16   # fewer works (few-shot paintings): every one trains, no validation
SHARE = 8         # one work in eight is held back ...
MAX_HELD = 16     # ... at most this many
MAX_SIDE = 256    # each held-back work is scored on a centre crop at most this size


def split(n, seed):
    """(training indices, held-back indices) of n works, seeded; nothing held back below MIN_IMAGES."""
    held = 0 if n < MIN_IMAGES else min(MAX_HELD, max(2, n // SHARE))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[held:].sort().values, order[:held].sort().values


@torch.no_grad()
def score(net, images, inputs=None, batch=16):
    """PSNR (dB, pooled) of the network's clamped reconstructions of ``images`` (from ``inputs``, e.g. damaged
    copies for a restoration model; the images themselves by default)."""
    was_training = net.training
    net.eval()
    inputs = images if inputs is None else inputs
    err = sum(float(((net.reconstruct(a) - x) ** 2).sum()) for a, x in zip(inputs.split(batch), images.split(batch)))
    net.train(was_training)
    return psnr_of_mse(err / images.numel())


def centre_crop(x, ch, cw):
    """The centre ch x cw of every image in a batch."""
    h, w = x.shape[-2:]
    t, l = (h - ch) // 2, (w - cw) // 2
    return x[..., t:t + ch, l:l + cw]
