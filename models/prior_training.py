"""Making the latent prior (latent_prior.py) from an artist's works.

The works are encoded once, at their own size and at halves of it while the latent still holds the
composition size (a painting's layout at coarser scales, its brushwork at the finest), and mirrored.
Learning more works later adds them to the same prior.
"""
import torch
import torch.nn.functional as F

from . import codec
from .errors import AtelierError
from .latent_prior import LatentPrior

MAX_LATENT_VALUES = 64 * 1024 * 1024   # 256 MB of latents in one prior: far beyond hundreds of works


class PriorError(AtelierError):
    """Works or a model the prior cannot be made from; the message says what to do."""


def check_images(ae, images):
    if type(ae.model).fixed_size:
        raise PriorError("a dense autoencoder's latent is one vector per image with no grid, so this prior (which "
                         "learns how neighbouring latent cells fit together) cannot use it; use a conv or "
                         "conv-vae autoencoder")
    if not (isinstance(images, torch.Tensor) and images.ndim == 4 and images.numel()):
        raise PriorError(f"expected a non-empty IMAGE batch [B,H,W,C], got "
                         f"{list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}; "
                         "check the node that made it")
    if not torch.isfinite(images).all():
        raise PriorError("images contain NaN or infinite pixels; fix the node that made them")
    f = ae.config["downscale"]
    if min(images.shape[1:3]) < 2 * f:
        raise PriorError(f"images of {images.shape[2]}x{images.shape[1]} are smaller than two latent cells of this "
                         f"model ({2 * f} px): too small to learn from; use larger images")


def encode_pyramid(ae, images, crop_cells, device="cpu", on_progress=None):
    """The works' latents at scales 1, 1/2, 1/4 ... (each still >= crop_cells on its short side) and mirrored:
    a list of [B,C,h,w] tensors, and the crop (shrunk to the works' latent size if they are smaller).
    ``on_progress()`` runs after each encode (Cancel)."""
    x = codec.prepare_images(ae, images, "crop")
    f = ae.config["downscale"]
    crop = max(2, min(crop_cells, min(x.shape[-2:]) // f))
    out = []
    while True:
        for view in (x, x.flip(-1)):
            out.append(codec.encode(ae, view.movedim(1, -1), "crop", device)["samples"].float().cpu())
            if on_progress:
                on_progress()
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        if min(h, w) // f < crop:
            return out, crop
        x = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def learn_prior(ae, images, crop_size=128, passes=2, device="cpu", on_progress=None):
    """A new autoencoder (a clone of ``ae``) whose prior holds these works, added to any it already had.
    ``on_progress`` runs after each encoding pass; an exception it raises (Cancel) leaves ``ae`` untouched."""
    check_images(ae, images)
    if passes < 1:
        raise PriorError(f"steps is {passes}; use 1 or more patch-matching passes (2 is a good start)")
    old = ae.prior
    latents, crop = encode_pyramid(ae, images, old.crop if old else max(2, crop_size // ae.config["downscale"]),
                                   device, on_progress)
    if old is not None:
        latents, crop = old.latents + latents, min(old.crop, crop)
    if sum(z.numel() for z in latents) > MAX_LATENT_VALUES:
        raise PriorError("these works are too many or too large for one prior (over 256 MB of latents); load "
                         "them smaller or fewer (Load Image Folder's size and count)")
    out = ae.clone()
    out.prior = LatentPrior(latents, crop, passes)
    works = (old.summary.get("works", 0) if old else 0) + int(images.shape[0])
    out.prior.summary = {"works": works, "crop_cells": crop}
    return out
