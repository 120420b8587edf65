"""Grid seams: how much stronger a picture's steps are across the latent grid's cell edges than inside cells.

SWD pools patches from every position, so a decoder that paints each 8x8 cell on its own, with a hard
edge and a texture stamp, can score as "real detail". This figure sees that: the mean squared step
between neighbouring pixels on either side of a cell edge, over the mean squared step between
neighbours inside cells. Real works sit near 1; blocking shows as a ratio above it.

    from seams import seam_ratio
    seam_ratio(recons, cell=8)   # [N,H,W,C] or [N,C,H,W] in 0..1
"""
import torch


def seam_ratio(images, cell):
    """Cell-edge step energy / in-cell step energy, both axes pooled, over a batch laid out [N,C,H,W]
    (or [N,H,W,C] with C of 1 or 3)."""
    x = images.float()
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.movedim(-1, 1)
    edge, inside = 0.0, 0.0
    n_edge, n_inside = 0, 0
    for d in (x.diff(dim=-1), x.diff(dim=-2).transpose(-1, -2)):   # steps along rows, then along columns
        across = (torch.arange(d.shape[-1]) + 1) % cell == 0       # step from the last pixel of a cell to the next
        on, off = d[..., across].pow(2), d[..., ~across].pow(2)
        edge, inside = edge + float(on.sum()), inside + float(off.sum())
        n_edge, n_inside = n_edge + on.numel(), n_inside + off.numel()
    return (edge / max(n_edge, 1)) / max(inside / max(n_inside, 1), 1e-12)
