"""Per-channel statistics of a model's latents over its training images.

Training stores them with the weights so new latents can be sampled from plain
(non-variational) autoencoders, and so artists can see what a typical latent looks like.
"""
import torch

from . import interrupt


@torch.no_grad()
def encode_batches(net, x, chunk=16):
    parts = []
    for i in range(0, x.shape[0], chunk):
        interrupt.check()
        parts.append(net.encode(x[i:i + chunk]))
    return torch.cat(parts)


@torch.no_grad()
def latent_statistics(net, data, crop):
    """Mean [C] and covariance [C,C] of latent values over all images and positions."""
    (h, w), (ch, cw) = data.shape[-2:], crop
    t, l = (h - ch) // 2, (w - cw) // 2
    z = encode_batches(net, data[:, :, t:t + ch, l:l + cw]).float()
    v = z.movedim(1, -1).reshape(-1, z.shape[1])     # [N*h*w, C]
    mean = v.mean(0)
    centred = v - mean
    cov = centred.T @ centred / max(1, v.shape[0] - 1)
    return {"mean": mean.cpu(), "cov": cov.cpu()}
