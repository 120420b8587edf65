"""Grid seams: how much stronger a picture's steps are across the latent grid's cell edges than inside cells.

SWD pools patches from every position, so a decoder that paints each 8x8 cell on its own, with a hard
edge and a texture stamp, can score as "real detail". This figure sees that: the mean squared step
between neighbouring pixels on either side of a cell edge, over the mean squared step between
neighbours inside cells. Real works sit near 1; blocking shows as a ratio above it.

    from seams import seam_ratio, grid_pattern_ratio
    seam_ratio(recons, cell=8)           # [N,H,W,C] or [N,C,H,W] in 0..1
    grid_pattern_ratio(recons, cell=8)   # the same layouts; H and W multiples of cell

A decoder can also paint the *same* texture into every cell (a hatching locked to the grid, which neither
the SWD nor the seam ratio sees: its edges are no stronger than its insides). That shows in the spectrum as
peaks at the grid's harmonics (k / cell cycles per pixel): ``grid_pattern_ratio`` is the power there over
the power one frequency step beside them. Real works sit near 1.
"""
import torch


def _channels_first(images):
    x = images.float()
    return x.movedim(-1, 1) if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3) else x


def seam_ratio(images, cell):
    """Cell-edge step energy / in-cell step energy, both axes pooled, over a batch laid out [N,C,H,W]
    (or [N,H,W,C] with C of 1 or 3)."""
    x = _channels_first(images)
    edge, inside = 0.0, 0.0
    n_edge, n_inside = 0, 0
    for d in (x.diff(dim=-1), x.diff(dim=-2).transpose(-1, -2)):   # steps along rows, then along columns
        across = (torch.arange(d.shape[-1]) + 1) % cell == 0       # step from the last pixel of a cell to the next
        on, off = d[..., across].pow(2), d[..., ~across].pow(2)
        edge, inside = edge + float(on.sum()), inside + float(off.sum())
        n_edge, n_inside = n_edge + on.numel(), n_inside + off.numel()
    return (edge / max(n_edge, 1)) / max(inside / max(n_inside, 1), 1e-12)


def grid_pattern_ratio(images, cell):
    """Mean spectral power at the cell grid's harmonics (DC left out) over the mean power of the four
    frequencies beside each, pooled over images and channels ([N,C,H,W] or [N,H,W,C], sides multiples of cell)."""
    x = _channels_first(images).double()
    h, w = x.shape[-2:]
    if h % cell or w % cell:
        raise ValueError(f"pictures of {w}x{h} are not whole {cell}-pixel cells")
    p = (torch.fft.fft2(x - x.mean((-2, -1), keepdim=True)).abs() ** 2).mean((0, 1))
    ys, xs = torch.arange(0, h, h // cell), torch.arange(0, w, w // cell)
    on = p[ys][:, xs]
    beside = (p[(ys + 1) % h][:, xs] + p[(ys - 1) % h][:, xs] + p[ys][:, (xs + 1) % w] + p[ys][:, (xs - 1) % w]) / 4
    return float((on.sum() - on[0, 0]) / (beside.sum() - beside[0, 0]).clamp_min(1e-30))   # [0, 0]: DC, left out
