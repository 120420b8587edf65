"""Making the latent prior (latent_prior.py) from an artist's works.

The works are encoded once, at their own size and at halves of it while the latent still holds the
composition size (a painting's layout at coarser scales, its brushwork at the finest), and mirrored.
Learning more works later adds them to the same prior.

A dataset (models/dataset.py: hundreds of full-resolution works of any size) is read one work at a time.
The prior keeps of each work what its method uses: the work scaled to the composition size (its layout,
where generation starts) and one random composition-sized square at each finer scale (the brushwork its
patches are pasted from; its banks keep at most MAX_PATCHES patches per scale anyway). So its memory is
set by the composition size and the number of works, never by the works' pixels, and all its latents are
squares of one size: a few tensors in the model file, however varied the works.
"""
import torch
import torch.nn.functional as F

from . import codec
from .dataset import WorkFolder
from .errors import AtelierError
from .latent_prior import LatentPrior

MAX_LATENT_VALUES = 64 * 1024 * 1024   # 256 MB of latents in one prior: far beyond hundreds of works


class PriorError(AtelierError):
    """Works or a model the prior cannot be made from; the message says what to do."""


def check_works(ae, works):
    if type(ae.model).fixed_size:
        raise PriorError("a dense autoencoder's latent is one vector per image with no grid, so this prior (which "
                         "learns how neighbouring latent cells fit together) cannot use it; use a conv or "
                         "conv-vae autoencoder")
    if isinstance(works, WorkFolder):
        return   # its works are scaled up to the composition size when read
    if not (isinstance(works, torch.Tensor) and works.ndim == 4 and works.numel()):
        raise PriorError(f"expected a non-empty IMAGE batch [B,H,W,C] or a dataset, got "
                         f"{list(works.shape) if isinstance(works, torch.Tensor) else type(works).__name__}; "
                         "check the node that made it")
    if not torch.isfinite(works).all():
        raise PriorError("images contain NaN or infinite pixels; fix the node that made them")
    f = ae.config["downscale"]
    if min(works.shape[1:3]) < 2 * f:
        raise PriorError(f"images of {works.shape[2]}x{works.shape[1]} are smaller than two latent cells of this "
                         f"model ({2 * f} px): too small to learn from; use larger images")


def scales(x, f, crop):
    """x [B,3,H,W] at its own size and halved while the latent keeps >= ``crop`` cells on the short side."""
    out = [x]
    while min(out[-1].shape[-2:]) // 2 // f >= crop:
        h, w = out[-1].shape[-2] // 2, out[-1].shape[-1] // 2
        out.append(F.interpolate(out[-1], size=(h, w), mode="bicubic", antialias=True, align_corners=False)
                   .clamp(0, 1))
    return out


def encode_views(ae, x, device, on_progress):
    """Latents [B,C,h,w] of x [B,3,H,W] and of its mirror image; ``on_progress()`` after each encode (Cancel)."""
    out = []
    for view in (x, x.flip(-1)):
        out.append(codec.encode(ae, view.movedim(1, -1), "crop", device)["samples"].float().cpu())
        if on_progress:
            on_progress()
    return out


def encode_pyramid(ae, images, crop_cells, device="cpu", on_progress=None):
    """An IMAGE batch's latents at scales 1, 1/2, 1/4 ... (each still >= crop_cells on its short side) and
    mirrored: a list of [B,C,h,w] tensors, and the crop (shrunk to the works' latent size if they are smaller)."""
    x = codec.prepare_images(ae, images, "crop")
    f = ae.config["downscale"]
    crop = max(2, min(crop_cells, min(x.shape[-2:]) // f))
    return [z for view in scales(x, f, crop) for z in encode_views(ae, view, device, on_progress)], crop


def encode_dataset(ae, dataset, crop, seed, device="cpu", on_progress=None, budget=MAX_LATENT_VALUES):
    """A dataset's latents, one work at a time: its composition (below) and a random composition-sized square
    (seeded) at each scale 1, 1/2 ... where the work is at least twice that, all mirrored too. Works smaller
    than the composition are scaled up, as for training. Four [N,C,crop,crop] tensors: compositions and
    squares, then their mirror images. Stops as soon as they pass ``budget`` values, not after encoding a
    collection of thousands."""
    f = ae.config["downscale"]
    side, g = crop * f, torch.Generator().manual_seed(int(seed))
    parts, total = [[], [], [], []], 0
    try:
        for i in range(len(dataset)):
            x = codec.prepare_images(ae, dataset.work(i, side).movedim(0, -1)[None].float().div(255), "crop")
            views = [composition(x, side)] + [square(v, side, g) for v in scales(x, f, 2 * crop)
                                              if min(v.shape[-2:]) >= 2 * side]
            for k, z in enumerate(encode_views(ae, torch.cat(views), device, on_progress)):
                parts[2 * k].append(z[:1])
                parts[2 * k + 1].append(z[1:])
                total += z.numel()
            if total > budget:
                raise too_many_works()
    finally:
        dataset.release()
    return [torch.cat(p) for p in parts if sum(len(z) for z in p)]   # compositions first: an IMAGE batch's order


def composition(x, side):
    """x [1,3,H,W] scaled so its short side is ``side``, centre square: the work's layout."""
    h, w = x.shape[-2:]
    size = max(side, round(h * side / min(h, w))), max(side, round(w * side / min(h, w)))
    if size != (h, w):
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    return square(x, side)


def square(x, side, generator=None):
    """The centre ``side`` square of x [B,C,H,W], or a random one drawn with ``generator``."""
    h, w = x.shape[-2:]
    if generator is None:
        top, left = (h - side) // 2, (w - side) // 2
    else:
        top = int(torch.randint(h - side + 1, (1,), generator=generator))
        left = int(torch.randint(w - side + 1, (1,), generator=generator))
    return x[..., top:top + side, left:left + side]


def too_many_works():
    return PriorError("these works are too many or too large for one prior (over 256 MB of latents); load them "
                      "smaller or fewer (Load Image Folder's size and count, Load Dataset Folder's count)")


def learn_prior(ae, works, crop_size=128, passes=2, device="cpu", on_progress=None, seed=0):
    """A new autoencoder (a clone of ``ae``) whose prior holds these works (an IMAGE batch or a dataset), added
    to any it already had. ``seed`` places a dataset's squares. ``on_progress`` runs after each encoding pass;
    an exception it raises (Cancel) leaves ``ae`` untouched."""
    check_works(ae, works)
    if passes < 1:
        raise PriorError(f"steps is {passes}; use 1 or more passes (2 is a good start)")
    old = ae.prior
    crop = old.crop if old else max(2, crop_size // ae.config["downscale"])
    if isinstance(works, WorkFolder):
        budget = MAX_LATENT_VALUES - (sum(z.numel() for z in old.latents) if old else 0)
        latents = encode_dataset(ae, works, crop, seed, device, on_progress, budget)
    else:
        latents, crop = encode_pyramid(ae, works, crop, device, on_progress)
    if old is not None:
        latents, crop = old.latents + latents, min(old.crop, crop)
    if sum(z.numel() for z in latents) > MAX_LATENT_VALUES:
        raise too_many_works()
    out = ae.clone()
    out.prior = LatentPrior(latents, crop, passes)
    works = (old.summary.get("works", 0) if old else 0) + len(works)
    out.prior.summary = {"works": works, "crop_cells": crop}
    return out
